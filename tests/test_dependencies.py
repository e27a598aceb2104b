"""What the platform imports at run time, it declares: every third-party module imported
anywhere in the runtime packages (top level or lazily inside a function) comes from a
distribution that `pip install lakehouse-platform` brings, directly or through another,
or from one of the optional extras (spark, sagemaker, bench). The test extra does not
count: the IoT alert processor once imported httpx, which only the test extra declared,
so it ran in CI and failed to start from a plain install.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = ("lakehouse", "streaming", "assets", "quality", "orchestration", "cli")
LOCAL = {*RUNTIME_PACKAGES, "bench", "tests"}
NOT_INSTALLED_HERE = {"sagemaker": "sagemaker-core"}
"""Modules of optional extras the test environment does not install, by distribution."""


def _installed_by(requirements: list[str]) -> set[str]:
    """The distributions `requirements` install: each, with what it requires (for the
    extras asked of it), all the way down."""
    found: set[str] = set()
    pending = [(Requirement(text), frozenset({""})) for text in requirements]
    while pending:
        requirement, extras = pending.pop()
        marker = requirement.marker
        if marker and not any(marker.evaluate({"extra": extra}) for extra in extras):
            continue
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        try:
            below = requires(requirement.name) or []
        except PackageNotFoundError:
            continue
        asked = frozenset({"", *requirement.extras})
        pending += [(Requirement(text), asked) for text in below]
    return found


def _imported_modules() -> dict[str, set[str]]:
    """Each third-party top-level module the runtime packages import, with the files."""
    modules: dict[str, set[str]] = {}
    for package in RUNTIME_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in LOCAL and top not in sys.stdlib_module_names:
                        modules.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return modules


def test_every_module_the_platform_imports_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _installed_by(project["dependencies"])
    optional = {
        canonicalize_name(Requirement(text).name)
        for extra, requirements in project["optional-dependencies"].items()
        if extra != "test"
        for text in requirements
    }
    providers = packages_distributions()
    undeclared = {
        module: sorted(files)
        for module, files in _imported_modules().items()
        if not (
            {canonicalize_name(d) for d in providers.get(module, [])} & (runtime | optional)
            or NOT_INSTALLED_HERE.get(module) in optional
        )
    }
    assert not undeclared, f"imported but not declared for a plain install: {undeclared}"


def test_a_module_only_the_test_extra_declares_is_caught() -> None:
    """The check above would have caught httpx: only the test extra brought it."""
    assert "httpx" not in _installed_by(["fastapi>=0.160", "redis[hiredis]>=8.0,<9"])
    assert "hiredis" in _installed_by(["redis[hiredis]>=8.0,<9"])

"""Every query the documentation shows runs against a demo lake and answers something.

The queries are read from the documents themselves (docs/queries.md and README.md), from
their fenced code blocks: ```sql blocks, and `lakehouse query "..."` command lines in shell
blocks. A query added to either document is picked up without touching this file. Each
one runs through `lakehouse.query.run_query`, as `lakehouse query` runs it, against a lake
built the way `lakehouse demo` builds it: the demo's generators, seed, event counts (at a
smaller scale) and default day (yesterday, UTC), all three domains landed in bronze, then
the real Dagster `observe_bronze` and `medallion` jobs for silver and gold.

A query must not fail and must return at least one row: an example that answers nothing
on the demo's data is a broken example. One that can only answer on more data than the
demo lands says so in the document, with a marker on the line before its block that
readers do not see rendered and that must give the reason:

    <!-- may-return-no-rows: needs two days of data; the demo lands one -->
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from cli.demo import DEFAULT_EVENTS, DEFAULT_SEED
from lakehouse.bronze import landed_days
from lakehouse.catalog import CATALOG, Layer
from lakehouse.delta import ensure_table
from lakehouse.query import run_query
from lakehouse.settings import Settings, get_settings
from streaming.generators import make_generator
from tests.conftest import settings_env
from tests.support.landing import land_in_bronze

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = (REPO / "docs" / "queries.md", REPO / "README.md")

# `lakehouse demo --scale 0.1`'s events (100k e-commerce, 25k fraud, 50k IoT readings):
# the same 200 machines (dev-0000..dev-0199) as at scale 1, with fewer readings each, and
# 10,000 card holders (user ids 1..10,000; scale 1 has 50,000). About 30 s to build on two
# cores, most of it the Dagster run.
SCALE = 0.1

SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "shell-session", "zsh"}
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
NO_ROWS_MARKER = re.compile(r"^<!--\s*may-return-no-rows:\s*(?P<reason>.*?)\s*-->$")
# Text that looks like a `lakehouse query` invocation, counted to check the shell parse.
QUERY_COMMAND = re.compile(r"(?:^|[\s/])lakehouse\s+query\b")
# Options of `lakehouse query` that take a value (see cli/app.py).
VALUE_OPTIONS = {"--format", "-f", "--limit"}


@dataclass(frozen=True)
class DocumentedQuery:
    """One SQL statement as a document shows it."""

    document: str
    line: int  # of the fence that opens its block
    sql: str
    no_rows_reason: str | None  # set only by an explicit marker before the block

    @property
    def id(self) -> str:
        first = " ".join(self.sql.split())[:60]
        return f"{self.document}:{self.line}: {first}"


@dataclass(frozen=True)
class CodeBlock:
    language: str
    line: int
    text: str
    marker: str | None  # the may-return-no-rows reason on the line before the fence


def code_blocks(markdown: str) -> Iterator[CodeBlock]:
    """The fenced code blocks of a Markdown document (CommonMark fences, ``` or ~~~)."""
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = opening["info"].strip().split(" ")[0].lower()
        previous = lines[index - 1].strip() if index > 0 else ""
        marker = NO_ROWS_MARKER.match(previous)
        body: list[str] = []
        closing = index + 1
        while closing < len(lines):
            candidate = lines[closing]
            stripped = candidate.strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append(candidate[indent:] if candidate[:indent].isspace() else candidate)
            closing += 1
        else:
            raise ValueError(f"line {index + 1}: a code block is never closed")
        yield CodeBlock(language, index + 1, "\n".join(body), marker["reason"] if marker else None)
        index = closing + 1


def shell_queries(text: str) -> list[str]:
    """The SQL argument of every `lakehouse query` command in a shell block.

    The block is split into words as a POSIX shell would (quotes, backslash-newline
    continuations, comments, `&&`/`;`/`|` between commands); a `$ ` prompt is dropped.
    """
    script = "\n".join(line.removeprefix("$ ") for line in text.splitlines())
    script = script.replace("\\\n", " ")
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = list(lexer)  # raises ValueError on an unclosed quote
    queries = []
    for position, word in enumerate(words[:-1]):
        if Path(word).name != "lakehouse" or words[position + 1] != "query":
            continue
        rest = iter(words[position + 2 :])
        for argument in rest:
            if argument in VALUE_OPTIONS:
                next(rest, None)
            elif argument.startswith("-"):
                continue
            else:
                queries.append(argument)
                break
        else:
            raise ValueError("`lakehouse query` without its SQL argument")
    return queries


def documented_queries(path: Path) -> list[DocumentedQuery]:
    """Every SQL statement in a document's ```sql blocks and `lakehouse query` lines."""
    name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name
    found = []
    for block in code_blocks(path.read_text()):
        where = f"{name}:{block.line}"
        if block.language == "sql":
            texts = [block.text]
        elif block.language in SHELL_LANGUAGES:
            try:
                texts = shell_queries(block.text)
            except ValueError as error:
                raise ValueError(f"{where}: cannot split the shell block: {error}") from None
            expected = len(QUERY_COMMAND.findall(block.text))
            if len(texts) != expected:
                raise ValueError(
                    f"{where}: {expected} `lakehouse query` commands but {len(texts)} parsed"
                )
            for sql in texts:
                if "$" in sql or "`" in sql:
                    raise ValueError(
                        f"{where}: the shell would expand `$` or a backtick in {sql!r}"
                    )
        else:
            continue
        if block.marker is not None and not block.marker:
            raise ValueError(f"{where}: a may-return-no-rows marker must give its reason")
        if block.marker is not None and not texts:
            raise ValueError(f"{where}: a may-return-no-rows marker on a block without SQL")
        for text in texts:
            try:
                statements = duckdb.extract_statements(text)
            except duckdb.Error as error:
                raise ValueError(f"{where}: DuckDB cannot parse {text!r}: {error}") from None
            if not statements:
                raise ValueError(f"{where}: an empty query")
            for statement in statements:
                sql = statement.query.strip().removesuffix(";").rstrip()
                found.append(DocumentedQuery(name, block.line, sql, block.marker))
    return found


def all_documented_queries() -> list[DocumentedQuery]:
    return [query for path in DOCUMENTS for query in documented_queries(path)]


QUERIES = all_documented_queries()


# --- the extraction itself ---------------------------------------------------------------


def test_the_documents_hold_queries_and_every_block_parses() -> None:
    per_document = {path.name: documented_queries(path) for path in DOCUMENTS}
    assert all(per_document.values()), {name: len(q) for name, q in per_document.items()}
    # queries.md is the catalogue: at least the questions it had when this test was written.
    assert len(per_document["queries.md"]) >= 15


def test_the_extraction_reads_every_form_and_refuses_what_it_cannot_read(
    tmp_path: Path,
) -> None:
    document = tmp_path / "doc.md"
    document.write_text(
        'Text with `lakehouse query "inline is not a block"`.\n\n'
        "```sql\nSELECT 1 AS one;\nSELECT 'a;b' AS two\n```\n\n"
        "<!-- may-return-no-rows: nothing to say -->\n"
        "```bash\n"
        "# a comment\n"
        '.venv/bin/lakehouse query --format json "SELECT \'x\' AS \\"quoted\\"" && \\\n'
        "  lakehouse query 'FROM t' -f csv; lakehouse tables\n"
        "```\n\n"
        '~~~console\n$ lakehouse query "SELECT 3\n  AS three"\n~~~\n\n'
        "```python\nprint('lakehouse query \"not shell\"')\n```\n"
    )
    found = documented_queries(document)
    assert [(q.sql, q.no_rows_reason) for q in found] == [
        ("SELECT 1 AS one", None),
        ("SELECT 'a;b' AS two", None),
        ("SELECT 'x' AS \"quoted\"", "nothing to say"),
        ("FROM t", "nothing to say"),
        ("SELECT 3\n  AS three", None),
    ]

    broken = {
        "unclosed quote": '```bash\nlakehouse query "SELECT 1\n```\n',
        "no SQL argument": "```bash\nlakehouse query --format json\n```\n",
        "shell expansion": '```bash\nlakehouse query "SELECT $HOME"\n```\n',
        "unparseable SQL": "```sql\nSELEC 1 FROM\n```\n",
        "empty block": "```sql\n\n```\n",
        "unclosed block": "```sql\nSELECT 1\n",
        "marker without reason": "<!-- may-return-no-rows: -->\n```sql\nSELECT 1\n```\n",
    }
    for problem, text in broken.items():
        document.write_text(text)
        with pytest.raises(ValueError):
            documented_queries(document)
            pytest.fail(problem)


# --- the queries against a demo lake ------------------------------------------------------


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A lake as `lakehouse demo` leaves it, without the broker: the same generators and
    seed land yesterday's traffic of all three domains in bronze, then `observe_bronze`
    and one `medallion` run build silver and gold, as the demo's stage 4 does."""
    from orchestration.instance import dagster_instance
    from orchestration.materialize import observe_bronze, rebuild_days

    root = tmp_path_factory.mktemp("demo-lake")
    settings = Settings(lakehouse_home=root / "home", lakehouse_root=str(root / "lake"))
    with pytest.MonkeyPatch.context() as patch:
        # The job's resources read the lake's settings from the environment.
        for name, value in settings_env(settings).items():
            patch.setenv(name, value)
        patch.delenv("DAGSTER_HOME", raising=False)
        get_settings.cache_clear()
        try:
            for spec in CATALOG.in_layer(Layer.BRONZE):
                ensure_table(spec, settings)
            for domain, events in DEFAULT_EVENTS.items():
                generator = make_generator(domain, seed=DEFAULT_SEED)
                land_in_bronze(settings, generator, max(1, round(events * SCALE)))
            days = landed_days(settings)
            instance = dagster_instance(settings)
            assert observe_bronze(instance).success
            run = rebuild_days(days[0], days[-1], instance)
            assert run.success, f"medallion run {run.run_id} failed: {run.failed_checks}"
            yield settings
        finally:
            get_settings.cache_clear()


@pytest.mark.parametrize("query", QUERIES, ids=[query.id for query in QUERIES])
def test_the_documented_query_answers_on_a_demo_lake(
    demo_lake: Settings, query: DocumentedQuery
) -> None:
    result = run_query(demo_lake, query.sql)
    if query.no_rows_reason is None:
        assert result.num_rows > 0, (
            f"{query.document}:{query.line} returns no rows on the demo's data; change the "
            "example, or mark the block `<!-- may-return-no-rows: <why> -->`"
        )

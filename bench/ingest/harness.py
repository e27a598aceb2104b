"""Shared plumbing: a broker per phase, settings for a fresh lake, the ingest child process.

Every run gets a new lake folder and consumer group, so no run inherits another's offsets
or files. The broker is tansu with in-memory storage, as `lakehouse up` runs it locally.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lakehouse.broker import EmbeddedBroker, ensure_topics
from lakehouse.settings import Settings
from streaming.ingest.worker import IngestOptions
from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def running_broker(workdir: Path, name: str) -> Iterator[EmbeddedBroker]:
    """A fresh tansu broker on a free port for one phase of the benchmark."""
    broker = EmbeddedBroker("127.0.0.1", free_port(), workdir / f"{name}-broker.log").start()
    try:
        yield broker
    finally:
        broker.stop()


def lake_settings(workdir: Path, name: str, bootstrap: str, **overrides: Any) -> Settings:
    """Settings for a new lake folder and consumer group under `workdir/name`."""
    base = workdir / name
    values: dict[str, Any] = {
        "lakehouse_home": str(base / "home"),
        "lakehouse_root": str(base / "lake"),
        "kafka_bootstrap_servers": bootstrap,
        "ingest_group_id": f"bench-{name}-{uuid.uuid4().hex[:8]}",
        **overrides,
    }
    return Settings(**values)


def settings_kwargs(settings: Settings) -> dict[str, Any]:
    """The fields that differ from the defaults, to rebuild the settings in the child."""
    return settings.model_dump(mode="json", exclude_defaults=True)


def create_topics(settings: Settings) -> None:
    """Create the catalogued topics (clickstream has 4 partitions)."""
    ensure_topics(settings)


def remove_lake(settings: Settings) -> None:
    """Free the disk of a finished run (2M events are about 100 MB of Parquet)."""
    shutil.rmtree(Path(settings.lakehouse_root).parent, ignore_errors=True)


@dataclass
class ChildProcess:
    """A running instrumented ingest process and the files it reports through."""

    process: subprocess.Popen[bytes]
    result_path: Path
    ready_path: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait for the consumer group to assign partitions; return the wall-clock time."""
        deadline = time.monotonic() + timeout
        while not self.ready_path.exists():
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"ingest exited early ({code}); see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partition assignment in {timeout}s; see {self.log_path}")
            time.sleep(0.05)
        return float(self.ready_path.read_text())

    def stop(self) -> None:
        """Ask the worker to flush and stop, as an operator's SIGTERM does."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def result(self, timeout: float = 600.0) -> dict[str, Any]:
        """Wait for the process to exit and return the probe's record."""
        code = self.process.wait(timeout=timeout)
        if code != 0 or not self.result_path.exists():
            raise RuntimeError(f"ingest failed with exit code {code}; see {self.log_path}")
        return json.loads(self.result_path.read_text())


def start_child(
    settings: Settings, options: IngestOptions, workdir: Path, name: str
) -> ChildProcess:
    """Start `bench.ingest.child` for one worker with these settings and options."""
    run_dir = workdir / name
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path, result_path = run_dir / "child-config.json", run_dir / "child-result.json"
    ready_path, log_path = run_dir / "assigned", run_dir / "child.log"
    config = {
        "settings": settings_kwargs(settings),
        "options": asdict(options),
        "ready_file": str(ready_path),
    }
    config_path.write_text(json.dumps(config))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.ingest.child", str(config_path), str(result_path)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return ChildProcess(process, result_path, ready_path, log_path)

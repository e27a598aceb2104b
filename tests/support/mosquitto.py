"""A private Mosquitto on a free port, provisioned for a fleet in a temporary folder.

Tests and the gateway benchmark start their own broker this way (Debian's
/usr/sbin/mosquitto with the config `lakehouse iot provision` writes), never the
machine's shared one on 1883.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lakehouse.broker import port_open
from streaming.edge.provision import CONFIG_FILE, Credentials, provision
from tests.support.net import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass
class MosquittoServer:
    """A provisioned broker process; `stop()` ends it with SIGTERM (or SIGKILL)."""

    directory: Path
    credentials: Credentials
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker as MQTT_URL names it."""
        return f"mqtt://127.0.0.1:{self.credentials.port}"

    def start(self) -> MosquittoServer:
        """Start Mosquitto with the provisioned config; wait until it listens."""
        log = (self.directory / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.directory / CONFIG_FILE)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.credentials.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start: see {self.directory}/mosquitto.log")
            time.sleep(0.05)
        return self

    def stop(self, kill: bool = False) -> None:
        """End the broker: SIGTERM (it saves its database), or SIGKILL with `kill`."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(10)


def provisioned_mosquitto(directory: Path, devices: list[str],
                          gateway_user: str = "gateway") -> MosquittoServer:
    """Provision `devices` into `directory` on a free port and start the broker."""
    credentials = provision(directory, devices, gateway_user=gateway_user, port=free_port())
    return MosquittoServer(directory, credentials).start()

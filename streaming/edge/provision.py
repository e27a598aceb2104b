"""Provision a Mosquitto broker for the fleet: passwords, ACL, config and credentials.

Each device gets a user named after its device id and a random password; the ACL lets it
write only under its own id in the catalog's topic layout (`pattern write` with `%u`) and
read nothing. The gateway user alone may read the readings. Passwords are hashed by
`mosquitto_passwd` itself (`-U` turns a plain `user:password` file into hashes in one
call); the plain passwords go to `credentials.json`, mode 0600, which the device
simulator and the gateway read. docs/iot-edge.md explains the model and the production
equivalents.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lakehouse.catalog import SENSOR_READINGS_MQTT, MqttTopicLayout

PASSWORD_FILE = "passwords"
ACL_FILE = "acl"
CONFIG_FILE = "mosquitto.conf"
CREDENTIALS_FILE = "credentials.json"
# A user name is one topic level: no wildcards, no separators, nothing Mosquitto's `%u`
# substitution or the password file's `user:hash` lines could misread.
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Credentials:
    """The broker's address and every MQTT user's password, as provisioned."""

    host: str
    port: int
    gateway: tuple[str, str]
    devices: dict[str, str]

    @classmethod
    def load(cls, directory: Path) -> Credentials:
        """Read `credentials.json` from a provisioned folder."""
        document = json.loads((directory / CREDENTIALS_FILE).read_text())
        return cls(
            host=document["host"],
            port=int(document["port"]),
            gateway=(document["gateway"]["username"], document["gateway"]["password"]),
            devices=dict(document["devices"]),
        )

    def write(self, path: Path) -> None:
        """Write the credentials readable by the owner only (created 0600, never wider)."""
        document = {
            "host": self.host,
            "port": self.port,
            "gateway": {"username": self.gateway[0], "password": self.gateway[1]},
            "devices": self.devices,
        }
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(document, handle, indent=1)


def acl_text(gateway_user: str, layout: MqttTopicLayout = SENSOR_READINGS_MQTT) -> str:
    """The ACL: the gateway reads the layout, every other user writes under its own id."""
    return (
        "# Written by `lakehouse iot provision`. Anything not granted here is denied.\n"
        f"user {gateway_user}\n"
        f"topic read {layout.root}/#\n"
        "\n"
        "# Every authenticated user (devices) may publish only where the device level is\n"
        "# its own user name; no device may subscribe.\n"
        f"pattern write {layout.device_acl_pattern}\n"
    )


def config_text(directory: Path, port: int, bind: str) -> str:
    """mosquitto.conf: one authenticated listener, persistence, deep per-session queues.

    `max_queued_messages` lets the gateway's persistent session hold hours of the fleet's
    readings while no gateway is connected; `max_inflight_messages` (MQTT 3.1.1 clients;
    v5 clients such as the gateway announce their own receive maximum) keeps enough
    readings in flight that acknowledging after Kafka does not throttle the stream.
    """
    return (
        "# Written by `lakehouse iot provision`; `lakehouse iot broker` runs it.\n"
        f"user {getpass.getuser()}\n"
        "per_listener_settings false\n"
        f"listener {port} {bind}\n"
        "allow_anonymous false\n"
        f"password_file {directory / PASSWORD_FILE}\n"
        f"acl_file {directory / ACL_FILE}\n"
        "persistence true\n"
        f"persistence_location {directory}/\n"
        "autosave_interval 30\n"
        "max_queued_messages 10000000\n"
        "max_queued_bytes 0\n"
        "max_inflight_messages 10000\n"
        "max_packet_size 1048576\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
        "log_type notice\n"
    )


def provision(directory: Path, devices: Iterable[str], *, gateway_user: str, port: int,
              bind: str = "127.0.0.1") -> Credentials:
    """Write a broker's files for `devices` into `directory` and return the credentials.

    Re-provisioning replaces every file (and so every password); the broker's persistence
    database, if any, is kept.
    """
    names = list(devices)
    for name in [*names, gateway_user]:
        if not _USER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a usable MQTT user name (letters, digits, . _ -)")
    if gateway_user in names or len(set(names)) != len(names):
        raise ValueError("device ids must be distinct and differ from the gateway user")
    mosquitto_passwd = shutil.which("mosquitto_passwd")
    if mosquitto_passwd is None:
        raise FileNotFoundError("mosquitto_passwd not found: apt-get install mosquitto")
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    credentials = Credentials(
        host=bind,
        port=port,
        gateway=(gateway_user, secrets.token_urlsafe(24)),
        devices={name: secrets.token_urlsafe(18) for name in names},
    )
    passwords = directory / PASSWORD_FILE
    passwords.unlink(missing_ok=True)
    descriptor = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        users = [credentials.gateway, *credentials.devices.items()]
        handle.writelines(f"{user}:{password}\n" for user, password in users)
    subprocess.run([mosquitto_passwd, "-U", str(passwords)], check=True,
                   capture_output=True)
    (directory / ACL_FILE).write_text(acl_text(gateway_user))
    (directory / CONFIG_FILE).write_text(config_text(directory, port, bind))
    credentials.write(directory / CREDENTIALS_FILE)
    return credentials

"""One maintenance job per table at a time, across processes.

delta-rs 1.6.6 lets two OPTIMIZE runs that started from the same table version both
commit, and every row of the rewritten partition is then there twice (docs/design's
stack notes). Its conflict checker does not catch it, so maintenance of a table takes this
lock first. Two kinds, one interface:

- PostgreSQL session advisory locks when `MAINTENANCE_LOCK_URL` is set (the
  production-like profile): they exclude processes on every machine that shares the
  database, and the server releases them when the holder's session ends, even after a
  `kill -9`.
- Otherwise an `flock` on a file under `LAKEHOUSE_HOME/locks` (the local profile): it
  excludes the processes of one machine, and the kernel releases it when the holder dies.

Both are non-blocking by default: a held lock raises `MaintenanceBusy` naming the table
and, where it can tell, the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2

from lakehouse.catalog import TableSpec
from lakehouse.settings import Settings

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2


class MaintenanceBusy(RuntimeError):
    """Another process holds the maintenance lock of the table."""

    def __init__(self, table: str, purpose: str, holder: str | None) -> None:
        self.table, self.purpose, self.holder = table, purpose, holder
        by = f" (held by {holder})" if holder else ""
        super().__init__(
            f"{table} is being maintained by another process{by}; {purpose} not started"
        )


def _lock_key(spec: TableSpec) -> int:
    """A stable signed 64-bit key for a table, the argument of PostgreSQL's advisory lock
    functions: the same in every process and Python version (unlike `hash()`)."""
    digest = hashlib.blake2b(f"lakehouse-maintenance:{spec.key}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


@contextlib.contextmanager
def exclusive(
    spec: TableSpec, settings: Settings, purpose: str = "compaction", timeout: float = 0.0
) -> Iterator[None]:
    """Hold the maintenance lock of `spec` for the block, or raise `MaintenanceBusy`.

    `timeout` seconds: how long to wait for a held lock before giving up (0: do not wait).
    `purpose` names the job in the holder's description and in the error.
    """
    holder = f"{purpose} of {spec.key} by pid {os.getpid()} on {socket.gethostname()}"
    if settings.maintenance_lock_url is not None:
        dsn = settings.maintenance_lock_url.get_secret_value()
        with _postgres_lock(spec, dsn, holder, purpose, timeout):
            yield
        return
    if settings.lake_is_s3:
        log.warning(
            "maintenance of %s is locked with a local file: processes on other machines are "
            "not excluded; set MAINTENANCE_LOCK_URL",
            spec.key,
            extra={"table": spec.key},
        )
    with _file_lock(spec, settings.home / "locks", holder, purpose, timeout):
        yield


@contextlib.contextmanager
def _file_lock(
    spec: TableSpec, folder: Path, holder: str, purpose: str, timeout: float
) -> Iterator[None]:
    """`flock` on `<folder>/<layer.name>.lock`: per open file, so it also excludes another
    thread of this process; the file says who holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.key}.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:

        def attempt() -> bool:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not _acquire(attempt, timeout):
            raise MaintenanceBusy(spec.key, purpose, path.read_text().strip() or None)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, holder.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _postgres_lock(
    spec: TableSpec, dsn: str, holder: str, purpose: str, timeout: float
) -> Iterator[None]:
    """A session advisory lock on its own connection, named after the holder so that a
    refused process can say who has it; closing the connection releases it."""
    key = _lock_key(spec)
    connection = psycopg2.connect(
        _libpq_dsn(dsn), connect_timeout=10, application_name=f"lakehouse {holder}"[:63]
    )
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:

            def attempt() -> bool:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                return bool(cursor.fetchone()[0])

            if not _acquire(attempt, timeout):
                raise MaintenanceBusy(spec.key, purpose, _postgres_holder(cursor, key))
            try:
                yield
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        connection.close()


def _acquire(attempt: Callable[[], bool], timeout: float) -> bool:
    """Try at once, then every 0.2 s until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not attempt():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(_POLL_SECONDS, remaining))
    return True


def _libpq_dsn(url: str) -> str:
    """The SQLAlchemy form (`postgresql+psycopg2://`, as DAGSTER_POSTGRES_URL is written)
    as the plain URI libpq accepts."""
    return re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url)


def _postgres_holder(cursor: psycopg2.extensions.cursor, key: int) -> str | None:
    """The application name of the session holding advisory lock `key` (a bigint key is
    stored as two 32-bit halves: classid high, objid low, objsubid 1)."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    cursor.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.classid::bigint = %s AND l.objid::bigint = %s",
        (unsigned >> 32, unsigned & 0xFFFF_FFFF),
    )
    row = cursor.fetchone()
    return row[0].removeprefix("lakehouse ") if row and row[0] else None

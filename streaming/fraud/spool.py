"""The audit trail's on-disk spool: records Kafka did not take, kept until it does.

**Files.** Every `Spool` (one per service process) appends records to its own segment
files in the spool folder, `<pid>-<random>-<seq>.spool`, starting a new segment past
`SEGMENT_BYTES`. It holds an exclusive `flock` on each of its files for as long as it
keeps them, so no other process ever reads them. Its files outlive it: a process that
closes (or dies) releases the locks, and its files become orphans. Whoever resends
next claims an orphan by winning its lock without waiting and then checking that the
file is still linked (an owner deletes a file only while holding its lock, so a lock won
on an unlinked file is stale); it resends the file and deletes it before letting go.
Two processes therefore never resend the same file, and a process restarted with a
non-empty spool resends what its predecessor left.

**Records.** A 14-byte header (magic, topic length, key length or -1, value length,
CRC-32 of topic, key and value), then the bytes. Writes are unbuffered (one `write` per
record, in the page cache at once), so a killed process loses none of what it spooled; a
reader stops at the first short or corrupt record (a write torn by a power cut) and
reports what it could not read.

**Bound.** `max_bytes` bounds this process's own files; an orphan being resent is not
counted (its owner's bound paid for it). `append` refuses a record that would pass the
bound and the caller counts and logs the drop: the spool never grows without limit and
never silently discards.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import secrets
import struct
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SEGMENT_BYTES = 8 << 20
"""A segment is sealed (and may be resent) once it holds this much."""

_MAGIC = 0xA7
_HEADER = struct.Struct(">BBiII")
_SUFFIX = ".spool"


@dataclass(frozen=True)
class SpooledRecord:
    """One Kafka message waiting in the spool."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass
class Segment:
    """A spool file this process holds the lock of: its own, or an orphan it claimed."""

    path: Path
    file: BinaryIO
    size: int
    records: int
    own: bool


@dataclass(frozen=True)
class Contents:
    """What a segment holds: the records it could read, and the bytes after the first
    torn or corrupt record, which it could not."""

    records: list[SpooledRecord]
    unreadable_bytes: int


def frame(record: SpooledRecord) -> bytes:
    """A record as it is written to a segment."""
    topic = record.topic.encode()
    key = record.key if record.key is not None else b""
    crc = zlib.crc32(record.value, zlib.crc32(key, zlib.crc32(topic)))
    key_length = len(record.key) if record.key is not None else -1
    header = _HEADER.pack(_MAGIC, len(topic), key_length, len(record.value), crc)
    return b"".join((header, topic, key, record.value))


def parse(data: bytes) -> Contents:
    """The records of a segment's bytes, up to the first torn or corrupt one."""
    records: list[SpooledRecord] = []
    position = 0
    while position + _HEADER.size <= len(data):
        magic, topic_length, key_length, value_length, crc = _HEADER.unpack_from(data, position)
        body = position + _HEADER.size
        end = body + topic_length + max(key_length, 0) + value_length
        if magic != _MAGIC or key_length < -1 or end > len(data):
            break
        topic = data[body : body + topic_length]
        key = data[body + topic_length : body + topic_length + max(key_length, 0)]
        value = data[end - value_length : end]
        if zlib.crc32(value, zlib.crc32(key, zlib.crc32(topic))) != crc:
            break
        try:
            name = topic.decode()
        except UnicodeDecodeError:
            break
        records.append(SpooledRecord(name, key if key_length >= 0 else None, value))
        position = end
    return Contents(records, len(data) - position)


class Spool:
    """A bounded, process-private spool of Kafka records in `folder`; thread-safe."""

    def __init__(self, folder: Path, max_bytes: int, segment_bytes: int | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or SEGMENT_BYTES
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._current: Segment | None = None
        self._sealed: deque[Segment] = deque()
        self._bytes = 0
        self._records = 0
        self._closed = False

    @property
    def bytes(self) -> int:
        """Bytes in this process's own segments."""
        return self._bytes

    @property
    def records(self) -> int:
        """Records in this process's own segments."""
        return self._records

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, record: SpooledRecord) -> bool:
        """Write a record to the current segment; False if the spool is full or closed.

        Raises OSError if the disk refuses the write (the record is then not spooled)."""
        data = frame(record)
        with self._lock:
            if self._closed or self._bytes + len(data) > self.max_bytes:
                return False
            segment = self._current or self._open_segment()
            segment.file.write(data)
            segment.size += len(data)
            segment.records += 1
            self._bytes += len(data)
            self._records += 1
            if segment.size >= self.segment_bytes:
                self._seal()
        return True

    def seal(self) -> None:
        """Close the current segment to writes so that it can be resent."""
        with self._lock:
            self._seal()

    def take(self) -> Segment | None:
        """The oldest sealed segment of this process, to resend; None if there is none."""
        with self._lock:
            return self._sealed.popleft() if self._sealed else None

    def claim_orphan(self) -> Segment | None:
        """Lock one file no live spool holds (left by a closed or dead process), oldest
        first; None if there is none."""
        # Our own files are never orphans: `take` hands out the sealed ones.
        for path in sorted(self._others(), key=_age):
            segment = _lock_existing(path)
            if segment is not None:
                return segment
        return None

    def has_others(self) -> bool:
        """Whether the folder holds files of other spools (alive or not)."""
        return any(True for _ in self._others())

    def _others(self) -> Iterator[Path]:
        mine = f"{self.owner}-"
        return (p for p in self.folder.glob(f"*{_SUFFIX}") if not p.name.startswith(mine))

    @staticmethod
    def read(segment: Segment) -> Contents:
        """Everything a segment holds."""
        segment.file.seek(0)
        return parse(segment.file.read())

    def release(self, segment: Segment) -> None:
        """Delete a resent segment (under its lock, then let go of it)."""
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        segment.file.close()
        if segment.own:
            with self._lock:
                self._bytes -= segment.size
                self._records -= segment.records

    def close(self) -> None:
        """Seal what was written and let go of every file: they stay for the next process
        to resend (an empty current segment is deleted)."""
        with self._lock:
            self._closed = True
            self._seal()
            for segment in self._sealed:
                segment.file.close()
            self._sealed.clear()

    def _open_segment(self) -> Segment:
        path = self.folder / f"{self.owner}-{next(self._numbers):08d}{_SUFFIX}"
        file = open(path, "ab+", buffering=0)  # noqa: SIM115 (held until the segment goes)
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._current = Segment(path, file, 0, 0, own=True)
        return self._current

    def _seal(self) -> None:
        segment, self._current = self._current, None
        if segment is None:
            return
        if segment.records == 0:
            segment.path.unlink(missing_ok=True)
            segment.file.close()
            return
        os.fsync(segment.file.fileno())
        self._sealed.append(segment)


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _lock_existing(path: Path) -> Segment | None:
    """The file at `path` under our exclusive lock, if nobody holds it and it is still
    linked (not resent and deleted by whoever held it before us)."""
    try:
        file = open(path, "rb")  # noqa: SIM115 (held until the segment is released)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        return None
    status = os.fstat(file.fileno())
    if status.st_nlink == 0:
        file.close()
        return None
    return Segment(path, file, status.st_size, 0, own=False)

"""The Redis side of the IoT alert processor: per partition, one hash holds the next offset,
the detector's state and the outbox of alert records not yet confirmed by Kafka.

One script call (`checkpoint.lua`) moves all three together, so a restart finds the
baselines and open alerts that match its offset exactly, and the alerts of the last batch
either in the outbox (sent again: the same bytes, the same ids) or already delivered.
Offsets committed to Kafka are only a hint for lag dashboards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import msgspec
import redis

from lakehouse.settings import Settings

_SCRIPT = resources.files(__package__).joinpath("checkpoint.lua").read_text()
_CLEAR = """
if redis.call('HGET', KEYS[1], 'offset') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'outbox', '')
end
return 1
"""

Outbox = list[tuple[bytes, bytes]]
"""Alert records waiting for Kafka: (message key, message value)."""


@dataclass
class Saved:
    """What Redis holds for one partition (`offset` None: nothing, read from the start)."""

    offset: int | None = None
    state: bytes | None = None
    outbox: Outbox = field(default_factory=list)


def encode_outbox(entries: Outbox) -> bytes:
    """The outbox as the script stores it (empty bytes for none)."""
    return msgspec.msgpack.encode([list(entry) for entry in entries]) if entries else b""


def decode_outbox(data: bytes | None) -> Outbox:
    """The outbox `encode_outbox` wrote."""
    if not data:
        return []
    return [(bytes(key), bytes(value)) for key, value in msgspec.msgpack.decode(data)]


class AlertStore:
    """The processor's handle on Redis: load, checkpoint and clear per partition."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.prefix = f"iot_alerts:{settings.iot_alerts_group_id}"
        self.client = client or redis.Redis.from_url(
            settings.redis_url, socket_timeout=10, socket_connect_timeout=2
        )
        self._checkpoint = self.client.register_script(_SCRIPT)
        self._clear = self.client.register_script(_CLEAR)

    def key(self, topic: str, partition: int) -> str:
        """The hash of one partition."""
        return f"{self.prefix}:{topic}:{partition}"

    def load(self, topic: str, partition: int) -> Saved:
        """What Redis records for a partition."""
        offset, state, outbox = self.client.hmget(
            self.key(topic, partition), ["offset", "state", "outbox"]
        )
        if offset is None:
            return Saved()
        return Saved(int(offset), state or None, decode_outbox(outbox))

    def checkpoint(self, topic: str, partition: int, start: int | None, next_offset: int,
                   state: bytes, outbox: Outbox) -> int | None:
        """Record a batch; None if applied, else the offset Redis holds (-1: none), the
        batch fenced. Raises `redis.RedisError` if Redis cannot be reached."""
        applied, stored = self._checkpoint(
            keys=[self.key(topic, partition)],
            args=["" if start is None else str(start), str(next_offset), state,
                  encode_outbox(outbox)],
        )
        return None if int(applied) == 1 else int(stored)

    def clear_outbox(self, topic: str, partition: int, offset: int) -> None:
        """Forget the outbox Kafka confirmed, unless another member moved the partition on."""
        self._clear(keys=[self.key(topic, partition)], args=[str(offset)])

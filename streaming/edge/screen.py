"""Decide each MQTT message's fate in a batch: forward, quarantine, or filter with a reason.

The order of the checks, all batch-minded (Python per message only for dictionary and
set lookups):

1. the topic must be in the catalog's layout, naming a device (`bad_topic` otherwise; the
   broker's ACL already confines each device to its own topics, so this only catches a
   misconfigured broker or a level beyond the layout);
2. the payload is decoded with the ingest sidecar's own `BatchDecoder`, so the gateway
   and ingest agree on every message; a payload it rejects is quarantined with the
   decoder's reason (invalid_json, schema_mismatch, missing_required_field, ...);
3. a valid reading whose `device_id` is not the topic's device is dropped
   (`device_mismatch`): a device may publish only its own readings;
4. a payload byte-identical to one of the last `window` valid ones is dropped
   (`duplicate`): devices redeliver at least once.

Every message gets exactly one verdict: nothing is dropped without being counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

from lakehouse.catalog import SENSOR_READINGS_MQTT, MqttTopicLayout
from streaming.ingest.decode import BatchDecoder


class Filtered(StrEnum):
    """Why the gateway dropped a message on purpose (the `reason` label of its metric)."""

    BAD_TOPIC = "bad_topic"
    DEVICE_MISMATCH = "device_mismatch"
    DUPLICATE = "duplicate"


@dataclass
class Quarantined:
    """A payload the decoder refused, sent on with its reason for bronze.quarantine."""

    index: int
    device: str
    reason: str
    detail: str


@dataclass
class Verdicts:
    """A batch's verdicts, by message index: each index appears in exactly one list."""

    forward: list[tuple[int, str]] = field(default_factory=list)  # (index, device id)
    quarantine: list[Quarantined] = field(default_factory=list)
    filtered: list[tuple[int, Filtered]] = field(default_factory=list)


class DedupeWindow:
    """The last `size` distinct payloads, to drop exact redeliveries; bounded memory.

    Payloads are kept as the bytes objects themselves (Python caches a bytes object's
    hash, so a lookup hashes each payload once), so two readings never collide.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def seen_before(self, payload: bytes) -> bool:
        """Whether the payload is in the window; remember it if not."""
        if self.size == 0:
            return False
        if payload in self._seen:
            return True
        self._seen.add(payload)
        self._order.append(payload)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return False

    def clear(self) -> None:
        """Forget everything (after a reconnect: see the gateway's redelivery rule)."""
        self._seen.clear()
        self._order.clear()

    def __len__(self) -> int:
        return len(self._order)


class Screen:
    """Applies the checks to batches of (topic, payload); reusable across batches."""

    def __init__(self, decoder: BatchDecoder, window: DedupeWindow,
                 layout: MqttTopicLayout = SENSOR_READINGS_MQTT) -> None:
        self.decoder = decoder
        self.window = window
        self.layout = layout
        self._devices: dict[str, str | None] = {}  # topic -> its device, bounded below

    def judge(self, topics: list[str], payloads: list[bytes]) -> Verdicts:
        """The verdict of every message of a batch."""
        verdicts = Verdicts()
        devices = [self._device(topic) for topic in topics]
        candidates = [i for i, device in enumerate(devices) if device is not None]
        if len(candidates) < len(topics):
            verdicts.filtered.extend(
                (i, Filtered.BAD_TOPIC) for i, device in enumerate(devices) if device is None
            )
        if not candidates:
            return verdicts
        decoded = self.decoder.decode([payloads[i] for i in candidates])
        for reject in decoded.rejects:
            index = candidates[reject.index]
            verdicts.quarantine.append(
                Quarantined(index, devices[index], reject.reason.value, reject.detail)  # type: ignore[arg-type]
            )
        claimed = _strings(decoded.table.column("device_id"))
        seen_before = self.window.seen_before
        for position, claim in zip(decoded.indices.tolist(), claimed, strict=True):
            index = candidates[position]
            device = devices[index]
            if claim != device:
                verdicts.filtered.append((index, Filtered.DEVICE_MISMATCH))
            elif seen_before(payloads[index]):
                verdicts.filtered.append((index, Filtered.DUPLICATE))
            else:
                verdicts.forward.append((index, device))  # type: ignore[arg-type]
        return verdicts

    def _device(self, topic: str) -> str | None:
        device = self._devices.get(topic, self)
        if device is self:
            device = self.layout.device_of(topic)
            if len(self._devices) >= 1_000_000:  # a fleet's topics fit; junk must not grow it
                self._devices.clear()
            self._devices[topic] = device
        return device  # type: ignore[return-value]


def _strings(column: pa.ChunkedArray) -> list[str | None]:
    """A string column as Python strings, in one C-level conversion."""
    return column.to_pylist()

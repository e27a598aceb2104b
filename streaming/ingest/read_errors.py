"""Consumer errors tied to a partition: when one makes an offset unreadable.

The worker reads a partition again after any error tied to it (docs/ingest.md, "Consumer
errors"); this decides when to stop trying for one offset and quarantine it instead.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, Message

from streaming.ingest.writer import Unreadable

# Reads of one offset that fail before it is quarantined as unreadable.
READ_ATTEMPTS = 5
# Consumer errors about one message's bytes (corrupt, undecompressable, too large, an
# unsupported codec): an offset that keeps failing with one of these is unreadable. Any
# other error tied to a partition (leader moved, fetch failed, broker unreachable) says
# nothing about a message: the partition is only ever read again, never given up on.
MESSAGE_ERRORS = frozenset(
    {
        KafkaError._BAD_MSG,
        KafkaError._BAD_COMPRESSION,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.UNSUPPORTED_COMPRESSION_TYPE,
    }
)


class ReadFailures:
    """Per partition, the offset whose reads keep failing, and how many times in a row."""

    def __init__(self) -> None:
        self._failing: dict[tuple[str, int], tuple[int, int]] = {}

    def give_up(
        self, key: tuple[str, int], message: Message, error: KafkaError, position: int | None
    ) -> Unreadable | None:
        """Count a failed read; once the same offset has failed `READ_ATTEMPTS` times,
        return it as unreadable (and forget it), otherwise None.

        Only an offset the error names, about that message, above the position: the
        consumer delivers a partition in order, so when the same offset has failed every
        time since the position, nothing lies between them (offsets need not be
        contiguous).
        """
        offset = message.offset()
        if error.code() not in MESSAGE_ERRORS or offset is None or offset < 0:
            return None
        if position is not None and offset <= position:
            return None
        failing, failures = self._failing.get(key, (offset, 0))
        failures = failures + 1 if failing == offset else 1
        if failures < READ_ATTEMPTS:
            self._failing[key] = (offset, failures)
            return None
        self._failing.pop(key, None)
        detail = (
            f"Kafka consumer error {error.name()}: {error.str()}; {failures} reads of this "
            "offset failed. The message's bytes were never received: value is null"
        )
        return Unreadable(key[1], offset, message.key(), message.timestamp(), detail)

    def forget(self, key: tuple[str, int]) -> None:
        self._failing.pop(key, None)

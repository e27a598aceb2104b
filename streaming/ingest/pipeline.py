"""The fail-stop pipeline between the consumer loop and the Delta commits.

Two single-thread stages: batch N+1 decodes while batch N commits (the commit runs mostly
in delta-rs, without the GIL), and commits happen strictly in order. A batch commits only
after the batch before it succeeded: once one fails (its decode or its commit), every
batch queued behind it is abandoned without touching a table, and the failure reaches the
consumer loop, which stops the process. Committing a later batch after a failed one would
move the quarantine past offsets whose poison was never written (docs/ingest.md).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from streaming.ingest.writer import Batch, FlushOutcome, Prepared, TopicWriter


class BatchAbandonedError(RuntimeError):
    """A batch queued behind a failed one; it was not committed."""


class CommitPipeline:
    """Decode-then-commit of batches in submission order, at most `depth` in flight."""

    def __init__(self, depth: int = 2) -> None:
        self.depth = depth
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decoder")
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delta-writer")
        self._inflight: deque[Future[FlushOutcome]] = deque()

    def __len__(self) -> int:
        return len(self._inflight)

    def full(self) -> bool:
        """Whether the caller must collect before submitting: bounded memory, backpressure."""
        return len(self._inflight) >= self.depth

    def submit(self, writer: TopicWriter, batch: Batch) -> None:
        """Queue a batch: decoded as soon as the decoder is free, committed after the last."""
        decoding = self._decoder.submit(writer.prepare, batch)
        previous = self._inflight[-1] if self._inflight else None
        self._inflight.append(self._committer.submit(_commit_after, writer, decoding, previous))

    def next_outcome(self, block: bool) -> FlushOutcome | None:
        """The oldest batch's outcome once done (waiting for it if `block`), else None.

        Raises the batch's error; the caller must then `abort()`.
        """
        if not self._inflight or not (block or self._inflight[0].done()):
            return None
        return self._inflight.popleft().result()

    def abort(self) -> None:
        """Abandon every queued batch; one already committing finishes (or is refused)."""
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()

    def close(self) -> None:
        """Wait for the threads; a batch not started by now is cancelled."""
        self._committer.shutdown(wait=True, cancel_futures=True)
        self._decoder.shutdown(wait=True, cancel_futures=True)


def _commit_after(
    writer: TopicWriter, decoding: Future[Prepared], previous: Future[FlushOutcome] | None
) -> FlushOutcome:
    """Commit a decoded batch if the batch before it committed (on the single commit thread,
    `previous` is done by now)."""
    if previous is not None and (previous.cancelled() or previous.exception() is not None):
        decoding.cancel()
        raise BatchAbandonedError("a batch before this one failed; not committed")
    return writer.commit(decoding.result())

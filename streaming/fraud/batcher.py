"""Deciding the requests that arrive together in one pass: the decision stages are
columnar (one Redis round trip, one feature computation, one model call for the lot),
so a batch of ten costs little more than a batch of one.

One batch at a time, so that every payment sees every earlier one (the state a batch
reads includes what the previous batch recorded). While a batch waits for Redis the event
loop keeps reading requests, and they form the next batch, taken as soon as this one is
done. No timer and no added wait: the first request to find the batcher idle starts it
with a task, whose first step runs after every callback already ready on the event loop,
so the requests that arrived in the same turn of the loop join, and nothing waits for a
batch to fill. Under light load batches are single requests; under heavy load more
requests arrive while a batch is decided, and batches grow exactly as much as the load
needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Collects the items submitted while it is idle or busy and hands them to `process`
    together (at most `max_batch` at a time, one batch at a time); each caller gets its
    own result, or the exception `process` raised."""

    def __init__(
        self, process: Callable[[list[Item]], Awaitable[list[Result]]], max_batch: int
    ) -> None:
        self.process = process
        self.max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """The result of `item`, decided with whatever else arrived alongside it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if self._running is None:
            self._running = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                self._pending = self._pending[self.max_batch :]
                await self._decide(batch)
        finally:
            self._running = None

    async def _decide(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self.process([item for item, _ in batch])
        except asyncio.CancelledError:  # shutting down: the callers are cancelled too
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # every caller of the batch gets it, none hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # a caller that went away (disconnect) is skipped
                future.set_result(result)

"""Deciding the requests that arrive together in one pass: the decision stages are
columnar (one Redis round trip, one feature computation, one model call for the lot),
so a batch of ten costs little more than a batch of one.

No timer and no added wait: the first request of a batch schedules the flush with
`call_soon`, which runs after every callback already ready on the event loop, so the
requests that arrived in the same turn of the loop (their handlers ran before it) join,
and nothing waits for a batch to fill. Under light load batches are single requests;
under heavy load the flush itself takes time, more requests arrive meanwhile, and
batches grow exactly as much as the load needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Collects items submitted in one turn of the event loop and hands them to
    `process` together (at most `max_batch` at a time); each caller gets its own
    result, or the exception `process` raised."""

    def __init__(self, process: Callable[[list[Item]], list[Result]], max_batch: int) -> None:
        self.process = process
        self.max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []

    async def submit(self, item: Item) -> Result:
        """The result of `item`, decided with whatever else arrived alongside it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        try:
            results = self.process([item for item, _ in batch])
        except Exception as error:  # every caller of the batch gets it, none hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # a caller that went away (disconnect) is skipped
                future.set_result(result)

"""The fraud service's micro-batcher: requests that arrive together are decided together,
one batch at a time, and what arrives while a batch waits on Redis is the next batch."""

from __future__ import annotations

import asyncio

import pytest

from streaming.fraud.batcher import Batcher


class Recorder:
    """A `process` that remembers its batches, waits like a Redis round trip, and checks
    that no two batches are ever in flight together."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.in_flight = 0
        self.fail_on = fail_on

    async def __call__(self, batch: list[str]) -> list[str]:
        self.in_flight += 1
        assert self.in_flight == 1, "two batches in flight at once"
        self.batches.append(batch)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        if self.fail_on in batch:
            raise ValueError(f"refused {self.fail_on}")
        return [item.upper() for item in batch]


def test_requests_of_one_turn_are_one_batch_and_each_gets_its_result() -> None:
    recorder = Recorder()

    async def scenario() -> list[str]:
        batcher = Batcher(recorder, max_batch=10)
        return await asyncio.gather(*(batcher.submit(item) for item in "abc"))

    assert asyncio.run(scenario()) == ["A", "B", "C"]
    assert recorder.batches == [["a", "b", "c"]]


def test_what_arrives_while_a_batch_is_decided_is_the_next_batch() -> None:
    recorder = Recorder()

    async def scenario() -> list[str]:
        batcher = Batcher(recorder, max_batch=10)
        first = asyncio.ensure_future(batcher.submit("a"))
        await asyncio.sleep(0.002)  # the first batch is now waiting "on Redis"
        later = [asyncio.ensure_future(batcher.submit(item)) for item in "bcd"]
        return await asyncio.gather(first, *later)

    assert asyncio.run(scenario()) == ["A", "B", "C", "D"]
    assert recorder.batches == [["a"], ["b", "c", "d"]]


def test_batches_are_cut_at_max_batch_in_arrival_order() -> None:
    recorder = Recorder()

    async def scenario() -> list[str]:
        batcher = Batcher(recorder, max_batch=2)
        return await asyncio.gather(*(batcher.submit(item) for item in "abcde"))

    assert asyncio.run(scenario()) == list("ABCDE")
    assert recorder.batches == [["a", "b"], ["c", "d"], ["e"]]


def test_a_failed_batch_fails_its_callers_only() -> None:
    recorder = Recorder(fail_on="b")

    async def scenario() -> tuple[list[object], str]:
        batcher = Batcher(recorder, max_batch=2)
        failed = await asyncio.gather(*(batcher.submit(item) for item in "abc"),
                                      return_exceptions=True)
        return failed, await batcher.submit("d")

    failed, after = asyncio.run(scenario())
    assert [type(result) for result in failed[:2]] == [ValueError, ValueError]
    assert failed[2] == "C"
    assert after == "D"


def test_a_cancelled_batch_cancels_its_callers() -> None:
    async def forever(batch: list[str]) -> list[str]:
        await asyncio.Event().wait()
        return batch

    async def scenario() -> None:
        batcher = Batcher(forever, max_batch=10)
        caller = asyncio.ensure_future(batcher.submit("a"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert batcher._running is not None
        batcher._running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller

    asyncio.run(scenario())

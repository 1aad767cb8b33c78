"""The one batching mechanism (shared/batching.py): calls made while a batch is in flight share the next one."""

from __future__ import annotations

import asyncio

import pytest

from shared.batching import Batcher


class Recorder:
    """A ``send`` that answers each item doubled, records each batch and holds it until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.sent = asyncio.Event()

    async def send(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        self.sent.set()
        await self.release.wait()
        return [ValueError(f"bad {i}") if i < 0 else i * 2 for i in items]


async def test_the_first_call_goes_at_once_and_the_calls_made_meanwhile_go_together() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.send, max_batch=100)
    first = asyncio.create_task(batcher.submit(1))
    await recorder.sent.wait()  # the first is in flight on its own
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(2, 12)]
    await asyncio.sleep(0)  # one loop turn: the ten calls are now waiting behind the first, not sent
    assert recorder.batches == [[1]]
    recorder.release.set()
    assert [await first, *[await t for t in rest]] == [i * 2 for i in range(1, 12)]
    assert recorder.batches == [[1], list(range(2, 12))]
    assert batcher.idle


async def test_a_batch_holds_at_most_max_batch_calls_in_arrival_order() -> None:
    recorder = Recorder()
    recorder.release.set()
    batcher = Batcher(recorder.send, max_batch=4)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(10))) == [i * 2 for i in range(10)]
    assert [i for batch in recorder.batches for i in batch] == list(range(10))
    assert max(len(batch) for batch in recorder.batches) == 4


async def test_an_item_error_fails_only_its_call() -> None:
    recorder = Recorder()
    recorder.release.set()
    batcher = Batcher(recorder.send, max_batch=10)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(-1), batcher.submit(2), return_exceptions=True)
    assert results[0] == 2 and results[2] == 4
    assert isinstance(results[1], ValueError)


async def test_a_failed_send_fails_every_call_of_its_batch_and_the_next_batch_goes_on() -> None:
    attempts = 0

    async def flaky(items: list[int]) -> list[int | BaseException]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("down")
        return items

    batcher = Batcher(flaky, max_batch=2)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert [type(r) for r in results[:2]] == [ConnectionError, ConnectionError]
    assert results[2:] == [2, 3]


async def test_a_caller_that_goes_away_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.send, max_batch=10)
    gone = asyncio.create_task(batcher.submit(1))
    stays = asyncio.create_task(batcher.submit(2))
    await recorder.sent.wait()
    gone.cancel()
    recorder.release.set()
    assert await stays == 4
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_cancelling_the_sender_cancels_every_waiting_call() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.send, max_batch=1)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await recorder.sent.wait()
    assert batcher._sender is not None
    batcher._sender.cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert batcher.idle

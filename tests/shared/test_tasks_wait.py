"""wait_event: the one pause of every background loop; it never swallows a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from shared.tasks import wait_event


async def test_set_timeout_and_cancel() -> None:
    event = asyncio.Event()
    assert not await wait_event(event, 0.01)
    event.set()
    assert await wait_event(event, 10)

    # A cancel that lands exactly as the timeout expires still stops the loop (asyncio.timeout could lose it).
    for _ in range(200):
        loop_task = asyncio.ensure_future(wait_event(asyncio.Event(), 0.001))
        await asyncio.sleep(0.001)  # the cancel is meant to race the timeout's expiry
        loop_task.cancel()
        try:
            await loop_task
        except asyncio.CancelledError:
            assert loop_task.cancelled()
        else:
            assert not loop_task.cancelling()  # it had finished before the cancel: nothing was swallowed
    with pytest.raises(asyncio.CancelledError):
        task = asyncio.ensure_future(wait_event(asyncio.Event(), 10))
        await asyncio.sleep(0)
        task.cancel()
        await task


async def test_a_loop_whose_cancellation_a_library_swallowed_still_stops() -> None:
    """The notification outbox hung a shutdown: nats-py turned its cancel into an error its loop retried."""
    woken, calling = asyncio.Event(), asyncio.Event()
    turns = 0

    async def swallowing_call() -> None:
        calling.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("stalled") from None  # what a library may do with a cancellation

    async def loop() -> None:
        nonlocal turns
        while True:
            turns += 1
            try:
                await swallowing_call()
            except Exception:
                pass
            await wait_event(woken, 0.01)

    task = asyncio.ensure_future(loop())
    await calling.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(2):
            await task
    assert turns == 1

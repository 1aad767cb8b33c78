"""Background loops owned by the app: started before ``yield`` in a cleanup context, stopped after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["background", "raise_if_cancelled"]


def raise_if_cancelled(cause: BaseException | None = None) -> None:
    """Re-raise a cancellation that a library swallowed.

    nats-py turns a cancellation inside ``publish_async`` into ``TooManyStalledMsgsError``, and on Python 3.11
    ``asyncio.timeout`` can lose one that races its own expiry; a loop that checks this at the top of every turn
    still stops when its app shuts down.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from cause


@asynccontextmanager
async def background(loop: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    task = asyncio.create_task(loop, name=name)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

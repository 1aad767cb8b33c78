"""Background loops owned by the app: started before ``yield`` in a cleanup context, stopped after it.

Each runs supervised (``shared.tasks``): a loop that fails is restarted with capped backoff and shows on ``/readyz``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from shared.tasks import LoopFactory, supervised

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
async def background(app: web.Application, name: str, factory: LoopFactory) -> AsyncIterator[None]:
    """Run ``factory()``'s loop supervised (restarted if it fails, its health on ``/readyz``): ``shared.tasks``."""
    async with supervised(app, name, factory):
        yield

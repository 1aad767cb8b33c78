"""Background loops owned by the app: started before ``yield`` in a cleanup context, stopped after it.

Each runs supervised (``shared.tasks``): a loop that fails is restarted with capped backoff and shows on ``/readyz``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from shared.tasks import LoopFactory, raise_if_cancelled, supervised

__all__ = ["background", "raise_if_cancelled"]


@asynccontextmanager
async def background(app: web.Application, name: str, factory: LoopFactory) -> AsyncIterator[None]:
    """Run ``factory()``'s loop supervised (restarted if it fails, its health on ``/readyz``): ``shared.tasks``."""
    async with supervised(app, name, factory):
        yield

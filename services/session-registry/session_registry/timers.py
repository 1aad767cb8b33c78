"""The timer loop: every replica polls ``reg:timers`` and fires what is due (``fire.lua`` claims each timer once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from shared.tasks import raise_if_cancelled, supervised

from .keys import SETTINGS, STORE
from .store import SessionStore

__all__ = ["run_timers", "timers_context"]

log = structlog.get_logger()


async def run_timers(store: SessionStore, interval_s: float, batch: int) -> None:
    while True:
        raise_if_cancelled()
        try:
            fired, seen = await store.fire_due(batch)
            if fired:
                log.info("timers_fired", fired=fired)
            if seen >= batch:
                continue  # more may be due right now
        except RedisError as exc:
            log.warning("timer_poll_failed", error=repr(exc))
        await asyncio.sleep(interval_s)


async def timers_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with supervised(
        app, "registry-timers", lambda: run_timers(app[STORE], settings.timer_poll_interval_s, settings.timer_batch)
    ):
        yield

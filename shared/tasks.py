"""Supervised background loops: restarted with capped backoff when they fail, their health on the app for ``/readyz``.

Failure model: a loop (a timer poller, a consumer, an outbox publisher) that raises is logged (an outage at warning
without a traceback, anything else with one), marked down in ``app[BACKGROUND]`` (``/readyz`` answers 503 naming it
while it is down) and started again after a backoff that doubles from ``MIN_BACKOFF_S`` up to ``max_backoff_s``
(back to the minimum once a run lasted ``HEALTHY_RUN_S``). A loop that returns has finished its work and is not
restarted. Cancellation (the app stopping) stops the supervisor and its loop.

Usage, in a cleanup context::

    async with supervised(app, "registry-timers", lambda: run_timers(store, ...)):
        yield
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from .keys import BACKGROUND
from .outages import outage_of

__all__ = ["LoopHealth", "raise_if_cancelled", "supervise", "supervised", "wait_event"]

log = structlog.get_logger()

MIN_BACKOFF_S = 0.1
HEALTHY_RUN_S = 60.0

LoopFactory = Callable[[], Coroutine[Any, Any, None]]
"""Makes a fresh run of a loop (a coroutine object runs once, so a restart needs a new one)."""


@dataclass
class LoopHealth:
    name: str
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    """Class name of the exception that stopped the last run (never its message: it may carry input)."""

    def to_dict(self) -> dict[str, Any]:
        return {"running": self.running, "restarts": self.restarts, "last_error": self.last_error}


def _health(app: web.Application, name: str) -> LoopHealth:
    if BACKGROUND not in app:
        app[BACKGROUND] = {}
    health = app[BACKGROUND][name] = LoopHealth(name)
    return health


async def _run(health: LoopHealth, factory: LoopFactory, max_backoff_s: float) -> None:
    backoff = MIN_BACKOFF_S
    while True:
        started = time.monotonic()
        health.running = True
        try:
            await factory()
        except Exception as exc:
            raise_if_cancelled(exc)  # a library turned our cancellation into its own error: stop, do not restart
            health.running = False
            health.last_error = type(exc).__name__
            dependency = outage_of(exc)
            if dependency is None:
                log.exception("background_loop_failed", loop=health.name)
            else:
                log.warning("background_loop_failed", loop=health.name, dependency=dependency, error=type(exc).__name__)
        else:
            health.running = False
            log.info("background_loop_finished", loop=health.name)
            return
        if time.monotonic() - started >= HEALTHY_RUN_S:
            backoff = MIN_BACKOFF_S
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff_s)
        health.restarts += 1
        log.info("background_loop_restarted", loop=health.name, restarts=health.restarts)


def supervise(
    app: web.Application, name: str, factory: LoopFactory, *, max_backoff_s: float = 30.0
) -> asyncio.Task[None]:
    """Start ``factory()``'s loop under supervision; cancel the returned task to stop it."""
    return asyncio.create_task(_run(_health(app, name), factory, max_backoff_s), name=name)


@asynccontextmanager
async def supervised(
    app: web.Application, name: str, factory: LoopFactory, *, max_backoff_s: float = 30.0
) -> AsyncIterator[None]:
    """Run a supervised loop for the duration of the ``async with`` block (a cleanup context's ``yield``)."""
    task = supervise(app, name, factory, max_backoff_s=max_backoff_s)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        app[BACKGROUND].pop(name, None)


def raise_if_cancelled(cause: BaseException | None = None) -> None:
    """Re-raise a cancellation that a library swallowed.

    nats-py turns a cancellation inside a publish or request into its own error (``TooManyStalledMsgsError``, a
    timeout), which a loop's ``except Exception`` then takes for a failure to retry; the task still says it is
    being cancelled, and this raises it again.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from cause


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether ``event`` is set within ``timeout_s``: the one way background loops pause until woken.

    A loop whose cancellation a library swallowed stops here (``raise_if_cancelled``): every loop pauses through
    this, so none outlives its app's shutdown. ``asyncio.wait``, not ``asyncio.timeout``: on Python 3.11 a cancel
    that lands as the timeout expires can be swallowed by ``asyncio.timeout``.
    """
    raise_if_cancelled()
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait([waiter], timeout=timeout_s)
    finally:
        waiter.cancel()
    return bool(done)

"""Background loops of a replica: shared timers (offer timeouts, escalations), agent presence, queue gauges.

Timers live in Redis sorted sets; each replica leases due ones with one script, so each fires once, and a
lease that is not finished (the replica died) comes due again for another replica.

Failure model: a loop never dies of an error. Redis or NATS briefly unreachable is expected: the loop logs a
warning (no traceback) and tries again after a pause that doubles up to ``RETRY_MAX_S``; anything else is logged
with its traceback and retried the same way. A timer leased but not handled comes due again after its lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial

import structlog
from aiohttp import web

from shared.keys import NATS_RECONNECTED
from shared.outages import outage_of
from shared.tasks import supervise, supervised, wait_event

from .keys import AGENT_CONNS, ALARM, OUTBOX, SETTINGS, STORE, TIMEOUTS
from .metrics import QUEUE_AGENTS, QUEUE_LONGEST_WAIT, QUEUE_WAITING
from .stats import queue_overview

__all__ = ["Backoff", "background_loops", "outbox_publisher"]

log = structlog.get_logger()

RETRY_MIN_S = 0.05
RETRY_MAX_S = 2.0


class Backoff:
    """The pause before the next try after ``failures`` failures in a row: doubling, capped."""

    def __init__(self) -> None:
        self.failures = 0

    def failed(self, event: str, exc: BaseException) -> float:
        self.failures += 1
        pause = min(RETRY_MIN_S * 2.0 ** (self.failures - 1), RETRY_MAX_S)
        if outage_of(exc) is not None:
            log.warning(event, error=type(exc).__name__, failures=self.failures, retry_in_s=pause)
        else:
            log.exception(event, failures=self.failures, retry_in_s=pause)
        return pause

    def succeeded(self) -> None:
        self.failures = 0


async def _timer_loop(app: web.Application, stopping: asyncio.Event) -> None:
    settings, store, timeouts, alarm = app[SETTINGS], app[STORE], app[TIMEOUTS], app[ALARM]
    backoff = Backoff()
    while not stopping.is_set():
        alarm.changed.clear()
        try:
            pause = settings.timer_poll_s
            for desk in settings.desk_map.names:
                due = await store.due(desk, settings.timer_lease_s)
                for member in due.offers:
                    await timeouts.offer_lapsed(desk, member)
                for session_id in due.waits:
                    await timeouts.escalate(desk, session_id)
                if due.offers or due.waits:
                    pause = 0.0  # handling them took time: look again at once
                elif due.next_in_s is not None:
                    pause = min(pause, due.next_in_s)
            backoff.succeeded()
        except Exception as exc:
            pause = backoff.failed("timer_loop_failed", exc)
        alarm.next_look = time.time() + pause
        await wait_event(alarm.changed, pause)


async def _presence_loop(app: web.Application, stopping: asyncio.Event) -> None:
    settings, store = app[SETTINGS], app[STORE]
    backoff = Backoff()
    pause = settings.presence_ttl_s / 3
    while not stopping.is_set():
        await wait_event(stopping, pause)
        try:
            agents = {(conn.desk, conn.agent_id) for conn in app[AGENT_CONNS].values()}
            await store.refresh_presence(agents, settings.presence_ttl_s)
            backoff.succeeded()
            pause = settings.presence_ttl_s / 3
        except Exception as exc:
            # Retried soon: a presence key that lapses takes the agent out of every queue.
            pause = min(backoff.failed("presence_refresh_failed", exc), settings.presence_ttl_s / 3)


async def _gauge_loop(app: web.Application, stopping: asyncio.Event) -> None:
    settings, store = app[SETTINGS], app[STORE]
    backoff = Backoff()
    while not stopping.is_set():
        pause = settings.metrics_refresh_s
        try:
            for row in await queue_overview(store, settings):
                # An agent whose replica died leaves the count when its presence lapses, even if nothing dispatches.
                await store.reconcile_available(row["queue"])
                QUEUE_WAITING.labels(row["queue"]).set(row["waiting"])
                QUEUE_LONGEST_WAIT.labels(row["queue"]).set(row["longest_wait_s"])
                for status, count in row["agents"].items():
                    QUEUE_AGENTS.labels(row["queue"], status).set(count)
            backoff.succeeded()
        except Exception as exc:
            pause = min(backoff.failed("queue_gauges_failed", exc), pause)
        await wait_event(stopping, pause)


async def background_loops(app: web.Application) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    loops = (_timer_loop, _presence_loop, _gauge_loop)
    # Supervised (shared.tasks): a loop that fails is restarted with capped backoff and shows on /readyz meanwhile.
    tasks = [supervise(app, f"notification{loop.__name__}", partial(loop, app, stopping)) for loop in loops]
    yield
    # A flag as well as cancel(): a client library that swallows a CancelledError must not keep a loop alive.
    stopping.set()
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=5)


async def outbox_publisher(app: web.Application) -> AsyncIterator[None]:
    """The outbox publisher of this replica (it publishes while it holds the lease; see ``outbox.py``)."""
    settings, outbox = app[SETTINGS], app[OUTBOX]
    # Right after NATS is back, what waited in the outbox goes out at once (not at the next poll).
    app[NATS_RECONNECTED].append(outbox.written.set)
    async with supervised(app, "notification-outbox", partial(outbox.run, settings.outbox_poll_s)):
        yield
    await outbox.release()

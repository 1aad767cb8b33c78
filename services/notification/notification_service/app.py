"""Application factory of the notification service."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from shared.accounts import AccountStore
from shared.keys import JETSTREAM, NATS, REDIS
from shared.nats_conn import nats_context
from shared.redis_conn import redis_context
from shared.web import setup_edge

from .claims import Claims
from .connections import Connections, revocations
from .consumer import session_consumer
from .dashboard import Fanout
from .intake import Intake
from .keys import (
    ACCOUNTS,
    AGENT_CONNS,
    ALARM,
    BACKGROUND,
    CLAIMS,
    CONNECTIONS,
    FANOUT,
    INTAKE,
    OUTBOX,
    SETTINGS,
    SNAPSHOTS,
    STORE,
    TIMEOUTS,
    SnapshotCache,
)
from .notifier import Notifier
from .outbox import Outbox
from .routes import setup_routes
from .settings import Settings
from .store import Store
from .timeouts import Alarm, Timeouts
from .timers import background_loops, outbox_publisher

__all__ = ["create_app"]


async def _components(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    desks, nc = settings.desk_map, app[NATS]
    store = app[STORE] = Store(
        app[REDIS], desks, retention_s=settings.request_retention_s, stats_timezone=settings.stats_zone()
    )
    app[ACCOUNTS] = AccountStore(app[REDIS])
    outbox = app[OUTBOX] = Outbox(app[REDIS], nc, app[JETSTREAM], desks, lease_s=settings.outbox_lease_s)
    notifier = Notifier(nc, outbox, desks)
    alarm = app[ALARM] = Alarm()
    intake = app[INTAKE] = Intake(settings, store, notifier, nc, alarm)
    timeouts = app[TIMEOUTS] = Timeouts(settings, store, notifier, intake)
    app[CLAIMS] = Claims(settings, store, notifier, nc, intake, timeouts)
    fanout = Fanout(app[JETSTREAM], settings.dashboard_buffer)
    await fanout.start()
    app[FANOUT] = fanout
    yield
    await fanout.stop()


BACKGROUND_GRACE_S = 10.0


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Leaves before NATS and Redis do, after letting unfinished clean-ups complete."""
    tasks = app[BACKGROUND] = set()
    yield
    if tasks:
        await asyncio.wait(set(tasks), timeout=BACKGROUND_GRACE_S)
    for task in set(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _end_streams(app: web.Application) -> None:
    if FANOUT in app:
        app[FANOUT].close_clients()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[AGENT_CONNS] = {}
    app[SNAPSHOTS] = SnapshotCache()
    app[CONNECTIONS] = Connections(settings)
    name = f"notification-{settings.instance_id or f'{socket.gethostname()}-{os.getpid()}'}"
    app.cleanup_ctx.append(redis_context(settings))
    app.cleanup_ctx.append(nats_context(settings, name))
    app.cleanup_ctx.append(_components)
    app.cleanup_ctx.append(outbox_publisher)  # events deferred while JetStream was unreachable
    app.cleanup_ctx.append(revocations(CONNECTIONS))
    app.cleanup_ctx.append(_background)
    app.cleanup_ctx.append(session_consumer)
    app.cleanup_ctx.append(background_loops)
    setup_edge(app, service="notification", settings=settings)
    # SSE responses end when their clients are dropped; WebSockets are closed by setup_edge.
    app.on_shutdown.append(_end_streams)
    setup_routes(app)
    return app

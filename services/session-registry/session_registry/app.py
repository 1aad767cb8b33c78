"""``create_app``: the session registry's aiohttp application (HTTP edge, NATS service, background loops)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from shared.accounts import AccountStore
from shared.keys import REDIS
from shared.nats_conn import nats_context
from shared.redis_conn import redis_context
from shared.web import setup_edge

from .correlation import correlation_context
from .keys import ACCOUNTS, SETTINGS, STORE
from .outbox import outbox_context
from .routes import setup_routes
from .rpc import rpc_context
from .settings import Settings
from .store import SessionStore
from .timers import timers_context

__all__ = ["create_app"]


async def _store_context(app: web.Application) -> AsyncIterator[None]:
    app[STORE] = SessionStore(app[REDIS], app[SETTINGS])
    app[ACCOUNTS] = AccountStore(app[REDIS])
    yield


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    instance = settings.instance_id or f"{socket.gethostname()}:{os.getpid()}"
    app.cleanup_ctx.append(redis_context(settings))
    app.cleanup_ctx.append(nats_context(settings, f"session-registry@{instance}"))
    app.cleanup_ctx.append(_store_context)
    app.cleanup_ctx.append(rpc_context)
    app.cleanup_ctx.append(timers_context)
    app.cleanup_ctx.append(outbox_context)
    app.cleanup_ctx.append(correlation_context)
    setup_edge(app, service="session-registry", settings=settings)
    setup_routes(app)
    return app

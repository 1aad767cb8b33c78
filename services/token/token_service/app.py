"""``create_app``: assembles the token service; no I/O happens before the app starts."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from shared.accounts import AccountStore
from shared.keys import NATS, REDIS
from shared.messaging import REGISTRY_CREATE_MANY, CreatedSession
from shared.nats_conn import nats_context
from shared.redis_conn import redis_context
from shared.rpc_many import ManyCaller
from shared.scripts import ScriptRunner
from shared.web import setup_edge

from .agents import AgentTokens
from .http import setup_routes
from .keys import ACCOUNTS, AGENT_TOKENS, LIMITS, SESSIONS, SETTINGS, SIGNER, TOKEN_REQUEST
from .limits import Limits
from .rpc import rpc_context
from .schemas import token_request_model
from .settings import Settings
from .signer import TokenSigner

__all__ = ["create_app"]

log = structlog.get_logger()


async def _collaborators(app: web.Application) -> AsyncIterator[None]:
    settings, redis = app[SETTINGS], app[REDIS]
    if settings.allow_unbound_agent_tokens:
        # Loud on purpose: such tokens let any agent key try PINs at Zoom's desk outside every limit of ours.
        log.warning("unbound_agent_tokens_allowed", setting="TOKEN_ALLOW_UNBOUND_AGENT_TOKENS", migration_only=True)
    runner = ScriptRunner(redis)  # authentications and limits of concurrent requests share round trips
    app[ACCOUNTS] = AccountStore(redis, runner=runner)
    app[LIMITS] = Limits.create(runner, settings)
    app[AGENT_TOKENS] = AgentTokens(settings, app[SIGNER], app[LIMITS], app[ACCOUNTS], app[NATS])
    # A create with an idempotency key may be retried after a timeout: it answers the session the first one made.
    app[SESSIONS] = ManyCaller(
        app[NATS],
        REGISTRY_CREATE_MANY,
        CreatedSession,
        timeout_s=settings.registry_timeout_s,
        idempotent=lambda create: create.idempotency_key is not None,
    )
    yield


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[SIGNER] = TokenSigner(settings.zoom_sdk_key.get_secret_value(), settings.zoom_sdk_secret.get_secret_value())
    app[TOKEN_REQUEST] = token_request_model(settings)
    client_name = f"token:{settings.instance_id or f'{socket.gethostname()}-{os.getpid()}'}"
    app.cleanup_ctx.append(redis_context(settings))
    app.cleanup_ctx.append(nats_context(settings, client_name))
    app.cleanup_ctx.append(_collaborators)
    app.cleanup_ctx.append(rpc_context)
    setup_edge(app, service="token", settings=settings)
    setup_routes(app)
    return app

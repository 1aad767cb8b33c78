"""The ``token`` nats.micro service: ``token.agent.issue`` (``IssueAgentToken`` -> ``AgentToken``).

Every replica joins the same queue group, so each request is answered once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from nats.micro import add_service

from shared.keys import NATS
from shared.messaging import TOKEN_AGENT_ISSUE, TOKEN_SERVICE, IssueAgentToken
from shared.rpc import Handlers

from . import __version__
from .keys import AGENT_TOKENS, SETTINGS

__all__ = ["rpc_context"]


async def rpc_context(app: web.Application) -> AsyncIterator[None]:
    handlers = Handlers.for_redis_pool(app[SETTINGS].redis_pool_size)
    service = await add_service(app[NATS], name=TOKEN_SERVICE, version=__version__, description="Zoom Cobrowse tokens")
    await service.add_endpoint(
        name="agent-issue",
        subject=TOKEN_AGENT_ISSUE,
        handler=handlers.endpoint(IssueAgentToken, app[AGENT_TOKENS].issue),
    )
    yield
    await handlers.stop(service)

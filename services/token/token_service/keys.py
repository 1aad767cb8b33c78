"""Application keys of the token service (the shared Redis/NATS keys live in ``shared.keys``)."""

from __future__ import annotations

from aiohttp import web

from shared.accounts import AccountStore
from shared.messaging import CreatedSession, CreateSession
from shared.rpc_many import ManyCaller

from .agents import AgentTokens
from .limits import Limits
from .schemas import TokenRequest
from .settings import Settings
from .signer import TokenSigner

__all__ = ["ACCOUNTS", "AGENT_TOKENS", "LIMITS", "SESSIONS", "SETTINGS", "SIGNER", "TOKEN_REQUEST"]

SETTINGS = web.AppKey("token_settings", Settings)
SIGNER = web.AppKey("token_signer", TokenSigner)
TOKEN_REQUEST: web.AppKey[type[TokenRequest]] = web.AppKey("token_request_model")
ACCOUNTS = web.AppKey("token_accounts", AccountStore)
LIMITS = web.AppKey("token_limits", Limits)
AGENT_TOKENS = web.AppKey("token_agent_tokens", AgentTokens)
SESSIONS: web.AppKey[ManyCaller[CreateSession, CreatedSession]] = web.AppKey("token_sessions")

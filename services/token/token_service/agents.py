"""Agent (role 2) tokens for a live PIN, shared by ``POST /api/agent/connect`` and the ``token.agent.issue`` RPC.

Who may hold an agent token: enabled accounts with role agent, supervisor or admin (supervisors and admins
join sessions to help or audit). PIN guessing is bounded per account and per client IP: every lookup takes a slot
in both budgets atomically *before* it reaches the registry, in the same script that authenticates the agent
(``AccountStore.admit`` with ``Limits.pin_lookup``), so N parallel guesses cost N slots; a lookup that finds a live
PIN (or one that is not ready yet, or whose session is full of agents) gives its slots back, so agents who type live
PINs are never slowed down. A lookup whose answer is unknown (timeout, registry unavailable) keeps its slots: it may
have reached the registry.
"""

from __future__ import annotations

from urllib.parse import urlencode

import structlog
from nats.aio.client import Client as NatsClient
from structlog.contextvars import get_contextvars

from shared.accounts import Account, AccountStore, Admission, Role
from shared.errors import RemoteError
from shared.messaging import REGISTRY_RESOLVE_MANY, AgentToken, IssueAgentToken, ResolvePin, SessionView
from shared.rpc_many import ManyCaller

from .limits import Limits
from .metrics import TOKENS_ISSUED, counts_refusals
from .settings import Settings
from .signer import RoleType, TokenSigner, desk_url

__all__ = ["AGENT_ROLES", "AgentTokens"]

log = structlog.get_logger()

AGENT_ROLES = (Role.AGENT, Role.SUPERVISOR)
"""Roles that may take agent tokens; ``Account.require`` lets admins through as well."""

LIVE_PIN_CODES = frozenset({"pin_not_ready", "agent_limit"})
"""Registry refusals that prove the PIN is live (its session cannot take the agent yet): no guess, slot given back.
Every other answer (``pin_not_found``, ``pin_retired``, ...) keeps the slot."""


class AgentTokens:
    def __init__(
        self, settings: Settings, signer: TokenSigner, limits: Limits, accounts: AccountStore, nc: NatsClient
    ) -> None:
        self._settings = settings
        self._signer = signer
        self._limits = limits
        self._accounts = accounts
        self._pins: ManyCaller[ResolvePin, SessionView] = ManyCaller(
            nc, REGISTRY_RESOLVE_MANY, SessionView, timeout_s=settings.registry_timeout_s
        )

    def sign(
        self, account: Account, *, user_name: str | None = None, expires_in_s: int | None = None
    ) -> tuple[str, int]:
        """A role-2 token for ``account``: ``user_id`` is the account id, ``user_name`` its name (or ``user_name``).

        The lifetime is ``TOKEN_AGENT_EXPIRY_S``, or ``expires_in_s`` when that is shorter.
        """
        settings = self._settings
        name = user_name or account.name[: settings.user_name_max_length]
        lifetime = min(expires_in_s or settings.agent_expiry_s, settings.agent_expiry_s)
        token, exp = self._signer.sign(RoleType.AGENT, account.id, name, lifetime)
        TOKENS_ISSUED.labels("agent").inc()
        return token, exp

    async def admit(self, api_key: str | None, client_ip: str) -> Admission:
        """The account owning ``api_key``, with its PIN lookup's slots taken (see the module docstring)."""
        return await self._accounts.admit(api_key, *self._limits.pin_lookup, ip=client_ip)

    async def for_pin(
        self,
        admission: Admission,
        pin: str,
        *,
        user_name: str | None = None,
        expires_in_s: int | None = None,
    ) -> AgentToken:
        """Resolve ``pin`` to a live session through the registry and sign a token for the admitted account."""
        account = admission.account.require(*AGENT_ROLES)  # with admins, every role: no admitted slot is kept here
        pin = pin.upper()  # BYOP PINs are case-insensitive; Zoom upper-cases them
        guesses = self._limits.guesses
        request = ResolvePin(pin=pin, agent_id=account.id, client_ip=admission.ip)
        try:
            session = await self._pins.call(request, request_id=get_contextvars().get("request_id"))
        except RemoteError as exc:
            if exc.code in LIVE_PIN_CODES:
                await self._accounts.give_back(admission, *guesses)
            raise
        await self._accounts.give_back(admission, *guesses)
        token, exp = self.sign(account, user_name=user_name, expires_in_s=expires_in_s)
        log.info("agent_token_issued", account_id=account.id, session_id=session.session_id)
        return AgentToken(
            token=token, desk_url=self._desk_url(pin, token), pin=pin, session_id=session.session_id, expires_at=exp
        )

    @counts_refusals
    async def issue(self, request: IssueAgentToken) -> AgentToken:
        """The ``token.agent.issue`` handler: the caller (notification) names the account, not its key."""
        admission = await self._accounts.admit_id(request.account_id, *self._limits.pin_lookup, ip=request.client_ip)
        return await self.for_pin(admission, request.pin)

    def _desk_url(self, pin: str, token: str) -> str:
        if self._settings.zoom_simulated:
            query = urlencode({"pin": pin, "access_token": token})
            return f"{self._settings.public_token_url.rstrip('/')}/demo/desk?{query}"
        return desk_url(self._settings.zoom_host, token)

"""This replica's open sockets and streams, by account: caps checked before the upgrade, and revocation.

Failure model:

- Caps bound *this process's* resources (a credential spread over N replicas may hold N times a cap). They are
  checked and the slot is taken in one synchronous step, before the upgrade, so a burst cannot overshoot them;
  past a cap the answer is 429 (per credential or account) or 503 (the whole process), both with ``Retry-After``.
  A socket that authenticates with its first frame learns of its account's cap after the upgrade: an error frame
  ``rate_limited`` and close code 4429.
- Revocation arrives on core NATS ``accounts.revoked`` (at most once: a replica disconnected from NATS at that
  moment misses it). Each connection of the account re-checks its credential at once and closes if it no longer
  holds (a connection opened with the account's *new* key stays). If Redis cannot answer, it closes: fail closed.
- Every ``NOTIFY_ACCOUNT_RECHECK_S`` every connection re-checks its credential anyway (the backstop for a missed
  message); there a Redis outage keeps the connection (an outage must not drop every console at once).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog
from aiohttp import web
from nats.aio.msg import Msg
from pydantic import ValidationError

from shared.errors import CobrowseError, RateLimited, Unauthorized, Unavailable
from shared.jsonbody import parse_json
from shared.keys import NATS
from shared.messaging import ACCOUNTS_REVOKED, AccountRevoked
from shared.tasks import supervise

from .settings import Settings

__all__ = ["Check", "Conn", "Connections", "Kind", "capped_stream", "credential_digest", "revocations"]

log = structlog.get_logger()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Check = Callable[[], Awaitable[object]]
"""Re-authenticates a connection's credential; raises ``CobrowseError`` when it no longer holds."""
End = Callable[[CobrowseError], Awaitable[None]]
"""Tells the client why (an error frame or event) and closes the connection."""


class Kind(StrEnum):
    AGENT = "agent"  # /ws/agent
    DASHBOARD = "dashboard"  # /ws/dashboard and /events
    CUSTOMER = "customer"  # a customer's request stream


def credential_digest(secret: str) -> str:
    """How a credential is told apart in memory (counts, caps) without keeping it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def revoked_error() -> Unauthorized:
    return Unauthorized("this credential was disabled or rotated", code="revoked")


@dataclass(eq=False)
class Conn:
    """One open socket or stream."""

    kind: Kind
    sse: bool
    account_id: str = ""
    credential: str = ""
    check: Check | None = None
    exact: bool = True
    """Whether ``check`` verifies the very credential (a key); a ticket's check sees only its account."""
    end: End | None = None
    ended: bool = False
    reason: CobrowseError | None = None

    async def close(self, exc: CobrowseError) -> None:
        """End the connection with ``exc``; before its handler said how (``on_end``), the end waits for that."""
        if self.ended:
            return
        self.ended, self.reason = True, exc
        log.info("connection_revoked", kind=self.kind.value, account_id=self.account_id, code=exc.code)
        await self._end()

    async def on_end(self, end: End) -> None:
        """How the handler ends the connection; at once if it was revoked before the handler got here."""
        self.end = end
        if self.ended:
            await self._end()

    async def _end(self) -> None:
        if self.end is None or self.reason is None:
            return
        end, self.end = self.end, None
        try:
            await end(self.reason)
        except (ConnectionError, RuntimeError):
            pass  # already closing

    async def recheck(self, *, fail_closed: bool) -> bool:
        """Close the connection if its credential no longer holds (``fail_closed``: also if that is unknown).

        Returns whether the connection is still open.
        """
        if self.check is None or self.ended:
            return not self.ended
        try:
            await self.check()
        except CobrowseError as exc:
            if exc.status in (401, 403, 404) or fail_closed:
                await self.close(revoked_error())
        except Exception as exc:  # Redis or NATS unreachable: we cannot tell
            log.warning("connection_recheck_failed", account_id=self.account_id, error=type(exc).__name__)
            if fail_closed:
                await self.close(revoked_error())
        return not self.ended


class Connections:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.open: set[Conn] = set()
        self._per_account: Counter[tuple[Kind, str]] = Counter()
        self._per_credential: Counter[str] = Counter()

    def admit(self, kind: Kind, *, sse: bool = False) -> Conn:
        """Take a slot of the process cap (before the upgrade); ``Unavailable`` (503) when full."""
        if len(self.open) >= self.settings.max_connections:
            message = "this server holds as many connections as it may"
            raise Unavailable(message, retry_after=self.settings.cap_retry_after_s)
        conn = Conn(kind, sse)
        self.open.add(conn)
        return conn

    def bind(self, conn: Conn, account_id: str, credential: str) -> None:
        """Count ``conn`` against its account and credential; ``RateLimited`` past a cap (the slot stays free)."""
        cap = {
            Kind.AGENT: self.settings.max_agent_sockets_per_account,
            Kind.DASHBOARD: self.settings.max_dashboard_streams_per_account,
            Kind.CUSTOMER: None,
        }[conn.kind]
        retry = self.settings.cap_retry_after_s
        if cap is not None and self._per_account[conn.kind, account_id] >= cap:
            raise RateLimited(retry, f"at most {cap} {conn.kind.value} connections per account")
        if conn.sse and self._per_credential[credential] >= self.settings.max_streams_per_credential:
            raise RateLimited(retry, f"at most {self.settings.max_streams_per_credential} streams per credential")
        conn.account_id, conn.credential = account_id, credential
        self._per_account[conn.kind, account_id] += 1
        if conn.sse:
            self._per_credential[credential] += 1

    def release(self, conn: Conn) -> None:
        if conn not in self.open:
            return
        self.open.discard(conn)
        if conn.account_id:
            self._per_account[conn.kind, conn.account_id] -= 1
            if self._per_account[conn.kind, conn.account_id] <= 0:
                del self._per_account[conn.kind, conn.account_id]
            if conn.sse:
                self._per_credential[conn.credential] -= 1
                if self._per_credential[conn.credential] <= 0:
                    del self._per_credential[conn.credential]

    def of(self, account_id: str) -> list[Conn]:
        return [c for c in self.open if c.account_id == account_id and c.kind is not Kind.CUSTOMER]

    async def revoke(self, account_id: str) -> None:
        async def one(conn: Conn) -> None:
            if conn.exact:
                await conn.recheck(fail_closed=True)
            else:  # cannot tell the old key from the new one: close
                await conn.close(revoked_error())

        await asyncio.gather(*(one(conn) for conn in self.of(account_id)))

    async def recheck_all(self, period_s: float) -> None:
        """Re-check every connection open now, spread evenly over ``period_s``.

        One at a time, never all at once: a thousand dashboards re-checked in one burst held the event loop and
        Redis for tens of milliseconds every period, and the offers waiting behind it showed it as their p99.
        """
        conns = list(self.open)
        if not conns:
            await asyncio.sleep(period_s)
        pause = period_s / max(len(conns), 1)
        for conn in conns:
            await asyncio.sleep(pause)
            if conn in self.open:
                await conn.recheck(fail_closed=False)


def revocations(key: web.AppKey[Connections]) -> Callable[[web.Application], AsyncIterator[None]]:
    """``cleanup_ctx``: follow ``accounts.revoked`` and re-check every connection every ``account_recheck_s``."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        conns = app[key]

        async def on_revoked(msg: Msg) -> None:
            try:
                event = AccountRevoked.model_validate(parse_json(msg.data))
            except (CobrowseError, ValidationError):
                log.warning("account_revoked_unreadable")
                return
            log.info("account_revoked", account_id=event.account_id, reason=event.reason.value)
            # A task: the subscription handles one message at a time and a revocation waits on Redis.
            task = asyncio.create_task(conns.revoke(event.account_id))
            pending.add(task)
            task.add_done_callback(pending.discard)

        async def backstop() -> None:
            while True:
                await conns.recheck_all(conns.settings.account_recheck_s)

        pending: set[asyncio.Task[None]] = set()
        sub = await app[NATS].subscribe(ACCOUNTS_REVOKED, cb=on_revoked)
        loop = supervise(app, "notification-account-backstop", backstop)  # restarted if a recheck fails
        yield
        loop.cancel()
        for task in (loop, *pending):
            task.cancel()
        await asyncio.gather(loop, *pending, return_exceptions=True)
        try:
            await sub.unsubscribe()
        except Exception:  # NATS already gone; nothing left to unsubscribe from
            log.info("revocations_unsubscribe_skipped")

    return ctx


def capped_stream(key: web.AppKey[Connections], handler: Handler) -> Handler:
    """Wrap a customer's SSE route: one slot of the process cap and of its session token's stream cap.

    The token is counted before the handler verifies it; a bad one is refused at once, freeing its slot.
    """

    async def capped(request: web.Request) -> web.StreamResponse:
        conns = request.app[key]
        token = request.headers.get("X-Session-Token") or request.query.get("token") or ""
        conn = conns.admit(Kind.CUSTOMER, sse=True)
        try:
            conns.bind(conn, request.match_info.get("session_id", ""), credential_digest(token))
            return await handler(request)
        finally:
            conns.release(conn)

    return capped

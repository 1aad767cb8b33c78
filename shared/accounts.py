"""Staff accounts (agent, supervisor, admin) and their API keys, kept in Redis.

An API key is shown once, when it is created or rotated; Redis keeps only its SHA-256 digest (the keys are
256-bit random values, so a fast unsalted digest is safe and lets one lookup find the account).

Disabling an account or rotating its key works at once for every new request (the key index and the ``disabled``
flag are read on each authentication). What is already open (agent sockets, dashboard streams) learns it from an
``AccountRevoked`` on core NATS ``accounts.revoked``, which ``set_disabled``/``rotate`` publish after the Redis change
when the store has a NATS client. Core NATS is fire-and-forget: if the message cannot be sent, the change in Redis
stands, a warning is logged, and open connections close at their next periodic re-check instead.

Keys::

    acct:<id>              hash  id, name, role, disabled, created_at, key_digest
    acct:key:<digest>      str   account id
    acct:ids               set   every account id
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from enum import StrEnum
from typing import Any, cast

import structlog
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from pydantic import BaseModel, ConfigDict

from .errors import Forbidden, NotFound, Unauthorized
from .messaging import ACCOUNTS_REVOKED, AccountRevoked, RevocationReason
from .redis_conn import RedisClient
from .scriptbatch import ScriptBatch

__all__ = ["Account", "AccountStore", "Role", "bearer_key", "publish_revocation"]

log = structlog.get_logger()

KEY_PREFIX = "cbk_"
KEY_SHAPE = re.compile(r"cbk_[A-Za-z0-9_-]{1,128}")
"""What an API key can look like (``token_urlsafe`` output); anything else is refused before any lookup, so a
header holding a non-ASCII or undecodable byte (which aiohttp keeps as a surrogate) is a 401, never a 500."""

_AUTHENTICATE = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('HGETALL', ARGV[1] .. id)
"""


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Account(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    role: Role
    disabled: bool = False
    created_at: float = 0.0

    def require(self, *roles: Role) -> Account:
        """Raise ``Forbidden`` unless the account has one of ``roles`` (admin passes every check)."""
        if self.role is not Role.ADMIN and self.role not in roles:
            raise Forbidden(f"requires role {' or '.join(roles)}", code="role_required")
        return self


def _digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _from_hash(fields: dict[str, Any]) -> Account:
    return Account(
        id=fields["id"],
        name=fields["name"],
        role=Role(fields["role"]),
        disabled=fields.get("disabled") == "1",
        created_at=float(fields.get("created_at", 0)),
    )


def bearer_key(request: web.Request) -> str | None:
    """The API key from ``Authorization: Bearer <key>``, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def publish_revocation(nc: NatsClient, account_id: str, reason: RevocationReason, *, timeout_s: int = 1) -> None:
    """Publish ``AccountRevoked`` and wait until the server has it (raises if NATS is unreachable)."""
    await nc.publish(ACCOUNTS_REVOKED, AccountRevoked(account_id=account_id, reason=reason).encode())
    await nc.flush(timeout=timeout_s)


class AccountStore:
    def __init__(
        self,
        redis: RedisClient,
        *,
        nc: NatsClient | None = None,
        scripts: ScriptBatch | None = None,
        prefix: str = "acct:",
    ) -> None:
        self._redis = redis
        self._nc = nc
        self._prefix = prefix
        # A ScriptBatch shared with other callers (a service's rate limits) lets authentications share round trips.
        self._scripts = scripts or ScriptBatch(redis)
        self._authenticate = self._scripts.register(_AUTHENTICATE)

    def _key(self, account_id: str) -> str:
        return f"{self._prefix}{account_id}"

    def _index(self, digest: str) -> str:
        return f"{self._prefix}key:{digest}"

    async def create(self, name: str, role: Role) -> tuple[Account, str]:
        """Create an account; returns it with its API key, which is not stored and cannot be shown again."""
        account = Account(id=secrets.token_hex(8), name=name, role=role, created_at=time.time())
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(api_key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._key(account.id),
                mapping={
                    "id": account.id,
                    "name": name,
                    "role": role.value,
                    "disabled": "0",
                    "created_at": str(account.created_at),
                    "key_digest": digest,
                },
            )
            pipe.set(self._index(digest), account.id)
            pipe.sadd(f"{self._prefix}ids", account.id)
            await pipe.execute()
        return account, api_key

    async def get(self, account_id: str) -> Account:
        fields = cast(dict[str, str], await self._redis.hgetall(self._key(account_id)))
        if not fields:
            raise NotFound(f"no account {account_id}", code="account_not_found")
        return _from_hash(fields)

    async def list(self) -> list[Account]:
        ids = sorted(cast(set[str], await self._redis.smembers(f"{self._prefix}ids")))
        async with self._redis.pipeline(transaction=False) as pipe:
            for account_id in ids:
                pipe.hgetall(self._key(account_id))
            rows = await pipe.execute()
        return sorted((_from_hash(r) for r in rows if r), key=lambda a: (a.role, a.name))

    async def set_disabled(self, account_id: str, disabled: bool) -> Account:
        """Disable (or enable) an account; disabling announces ``AccountRevoked(reason="disabled")``."""
        await self.get(account_id)
        await self._redis.hset(self._key(account_id), "disabled", "1" if disabled else "0")
        if disabled:
            await self._announce(account_id, RevocationReason.DISABLED)
        return await self.get(account_id)

    async def rotate(self, account_id: str) -> str:
        """Replace the account's API key; the old one stops working at once."""
        account_key = self._key(account_id)
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(api_key)
        # WATCH guards against a concurrent rotation leaving two live keys for one account.
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(account_key)
            old = cast(str | None, await pipe.hget(account_key, "key_digest"))
            if old is None:
                raise NotFound(f"no account {account_id}", code="account_not_found")
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.delete(self._index(old))
            pipe.set(self._index(digest), account_id)
            pipe.hset(account_key, "key_digest", digest)
            await pipe.execute()
        await self._announce(account_id, RevocationReason.ROTATED)
        return api_key

    async def _announce(self, account_id: str, reason: RevocationReason) -> None:
        if self._nc is None:
            return
        try:
            await publish_revocation(self._nc, account_id, reason)
        except (NatsError, OSError, TimeoutError) as exc:
            # The change stands; open sockets and streams still close at their periodic account re-check.
            log.warning("account_revocation_unpublished", account_id=account_id, reason=reason.value, error=repr(exc))

    async def authenticate(self, api_key: str | None) -> Account:
        """The enabled account owning ``api_key``; ``Unauthorized`` if unknown, ``Forbidden`` if disabled."""
        if not api_key:
            raise Unauthorized()
        if not KEY_SHAPE.fullmatch(api_key):
            raise Unauthorized("unknown API key", code="invalid_api_key")
        flat = await self._scripts.run(self._authenticate, [self._index(_digest(api_key))], [self._prefix])
        if not flat:
            raise Unauthorized("unknown API key", code="invalid_api_key")
        account = _from_hash(dict(zip(flat[::2], flat[1::2], strict=True)))
        if account.disabled:
            raise Forbidden("account is disabled", code="account_disabled")
        return account

    async def authenticate_request(self, request: web.Request, *roles: Role) -> Account:
        """Authenticate the request's bearer key and require one of ``roles``."""
        account = await self.authenticate(bearer_key(request))
        return account.require(*roles) if roles else account

"""Staff accounts (agent, supervisor, admin) and their API keys, kept in Redis.

An API key is shown once, when it is created or rotated; Redis keeps only its SHA-256 digest (the keys are
256-bit random values, so a fast unsalted digest is safe and lets one lookup find the account).

Disabling an account or rotating its key works at once for every new request (the key index and the ``disabled``
flag are read on each authentication). What is already open (agent sockets, dashboard streams) learns it from an
``AccountRevoked`` on core NATS ``accounts.revoked``, which ``set_disabled``/``rotate`` publish after the Redis change
when the store has a NATS client. Core NATS is fire-and-forget: if the message cannot be sent, the change in Redis
stands, a warning is logged, and open connections close at their next periodic re-check instead.

Every account lives in one Redis slot (the hash tag ``{all}``), so each change (create, disable, rotate) is one
atomic script, on one Redis and on a Redis Cluster alike, and an authentication is one script call. One slot is
enough: staff accounts number in the thousands at most, and every call is a few O(1) commands on small keys.

An account's request that must also take rate-limit budgets (an agent's PIN lookup: its agent tokens, its PIN
guesses and its client IP's) is *admitted* (``admit``): one script finds the account and takes a slot of every budget,
all or none, so an authentication costs no extra round trip for its limits. Those budgets (``ratelimit.Budget``) are
counted beside the accounts, in their slot, for that reason.

Keys (``ACCOUNTS``)::

    acct:{all}:<id>                  hash  id, name, role, disabled, created_at, key_digest
    acct:{all}:key:<digest>          str   account id
    acct:{all}:ids                   set   every account id
    acct:{all}:rl:<subject>:<name>   str   a budget's counter: subject an account id or a client IP (window TTL)

Accounts written by versions before the hash tag (``acct:<id>``, ``acct:key:<digest>``, ``acct:ids``) are copied
into these keys by ``cobrowse-accounts migrate`` (``AccountStore.migrate_legacy``), once, on the old single Redis.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self, cast

import structlog
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from pydantic import BaseModel, ConfigDict

from .errors import Forbidden, NotFound, RateLimited, Unauthorized
from .messaging import ACCOUNTS_REVOKED, AccountRevoked, RevocationReason
from .ratelimit import BUDGETS_LUA, Budget
from .redis_conn import RedisClient
from .scripts import Keyspace, Script, ScriptRunner

__all__ = [
    "ACCOUNTS",
    "Account",
    "Admission",
    "AccountResult",
    "AccountStore",
    "ListResult",
    "Role",
    "bearer_key",
    "publish_revocation",
]

log = structlog.get_logger()

KEY_PREFIX = "cbk_"
KEY_SHAPE = re.compile(r"cbk_[A-Za-z0-9_-]{1,128}")
"""What an API key can look like (``token_urlsafe`` output); anything else is refused before any lookup, so a
header holding a non-ASCII or undecodable byte (which aiohttp keeps as a surrogate) is a 401, never a 500."""

ACCOUNTS = Keyspace("acct:", "all", account="{}", index="key:{}", ids="ids", budget="rl:{}:{}")
"""Every account key, in one slot (account ids are 16 hex digits, so they never read as ``ids``, ``key:...`` or
``rl:...``)."""

ACCOUNT_SUBJECT = "-"
"""In the admit script's arguments, a budget counted for the account found (not for a client IP)."""

_LIBRARY = """
local function account(id)
  local flat = redis.call('HGETALL', k_account(id))
  if #flat == 0 then return nil end
  local fields = {}
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  fields.key_digest = nil  -- what finds the account, not part of it
  return fields
end
"""

# ARGV: id, name, role, disabled ('0'/'1'), created_at, key digest.
_CREATE = """
local id = ARGV[1]
redis.call('HSET', k_account(id), 'id', id, 'name', ARGV[2], 'role', ARGV[3], 'disabled', ARGV[4],
  'created_at', ARGV[5], 'key_digest', ARGV[6])
redis.call('SET', k_index(ARGV[6]), id)
redis.call('SADD', K_IDS, id)
return { account = account(id) }
"""

# ARGV: how the account is named ('key': by its API key's digest; 'id': by its id) and that name, then four per
# budget: its subject (ACCOUNT_SUBJECT or a client IP), name, limit, window (ms). An enabled account takes a slot of
# every budget, or none (ratelimit.BUDGETS_LUA); a disabled one takes nothing.
_ADMIT = """
local id = ARGV[2]
if ARGV[1] == 'key' then id = redis.call('GET', k_index(ARGV[2])) end
local fields = id and account(id)
if not fields then return {} end
if fields.disabled == '1' then return { account = fields } end
local budgets = {}
for i = 3, #ARGV, 4 do
  local subject = ARGV[i] == C.ACCOUNT_SUBJECT and id or ARGV[i]
  budgets[#budgets + 1] = { k_budget(subject, ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]) }
end
local reply = take(budgets)
reply.account = fields
return reply
"""

# ARGV: two per budget: its subject (an account id or a client IP), its name.
_GIVE_BACK = """
local keys = {}
for i = 1, #ARGV, 2 do keys[#keys + 1] = k_budget(ARGV[i], ARGV[i + 1]) end
return { released = give_back(keys) }
"""

# ARGV: id, disabled ('0'/'1').
_SET_DISABLED = """
if redis.call('EXISTS', k_account(ARGV[1])) == 0 then return {} end
redis.call('HSET', k_account(ARGV[1]), 'disabled', ARGV[2])
return { account = account(ARGV[1]) }
"""

# ARGV: id, new key digest. The old key's index entry goes in the same step: never two live keys for one account.
_ROTATE = """
local old = redis.call('HGET', k_account(ARGV[1]), 'key_digest')
if not old then return {} end
redis.call('DEL', k_index(old))
redis.call('SET', k_index(ARGV[2]), ARGV[1])
redis.call('HSET', k_account(ARGV[1]), 'key_digest', ARGV[2])
return { account = account(ARGV[1]) }
"""

_LIST = """
local accounts = {}
for _, id in ipairs(redis.call('SMEMBERS', K_IDS)) do
  local fields = account(id)
  if fields then accounts[#accounts + 1] = fields end
end
return { accounts = accounts }
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


@dataclass(frozen=True)
class AccountResult:
    """The answer of the scripts about one account (create, authenticate, set_disabled, rotate)."""

    account: Account | None
    """``None`` when there is no such account (or no account holds the key)."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        fields = raw.get("account")
        return cls(account=_from_hash(fields) if fields else None)


@dataclass(frozen=True)
class Admitted:
    """The admit script's answer: the account (``None`` if none), and whether it got a slot of every budget."""

    account: Account | None
    granted: bool
    retry_after_ms: int
    """When refused: until the fullest budget's window ends."""
    counts: tuple[int, ...]
    """Each budget's count including this request, in the order asked (empty when refused or disabled)."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        fields = raw.get("account")
        return cls(
            account=_from_hash(fields) if fields else None,
            granted=bool(raw.get("granted")),
            retry_after_ms=int(raw.get("retry_after_ms", 0)),
            counts=tuple(int(n) for n in raw.get("counts") or ()),  # an empty Lua table arrives as {}
        )


@dataclass(frozen=True)
class GivenBack:
    """The give_back script's answer: how many counters still existed and gave a slot back."""

    released: int

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(released=int(raw["released"]))


@dataclass(frozen=True)
class Admission:
    """An enabled account, admitted with one slot of each of ``budgets`` (see ``AccountStore.admit``)."""

    account: Account
    ip: str
    """The client IP its per-IP budgets were counted for (empty: none were)."""
    budgets: tuple[Budget, ...]
    counts: tuple[int, ...]
    """Each budget's count including this request, in the order of ``budgets``."""

    def subject(self, budget: Budget) -> str:
        return self.ip if budget.per_ip else self.account.id


@dataclass(frozen=True)
class ListResult:
    """The ``list`` script's answer: every account."""

    accounts: tuple[Account, ...]

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(accounts=tuple(_from_hash(fields) for fields in raw.get("accounts") or ()))  # {} when empty


class AccountStore:
    """Accounts in ``redis``; ``runner``, when given, is a ``ScriptRunner`` shared with the service's other scripts
    (say its rate limits), so that concurrent authentications and reservations share round trips."""

    def __init__(self, redis: RedisClient, *, nc: NatsClient | None = None, runner: ScriptRunner | None = None) -> None:
        self._redis = redis
        self._nc = nc
        self._base = ACCOUNTS.base()
        runner = runner or ScriptRunner(redis)

        def script(name: str, body: str) -> Script[AccountResult]:
            return runner.script(name, body, AccountResult, keyspace=ACCOUNTS, library=_LIBRARY)

        library, constants = _LIBRARY + BUDGETS_LUA, {"ACCOUNT_SUBJECT": ACCOUNT_SUBJECT}
        self._admit = runner.script("admit", _ADMIT, Admitted, keyspace=ACCOUNTS, constants=constants, library=library)
        self._give_back = runner.script("give_back", _GIVE_BACK, GivenBack, keyspace=ACCOUNTS, library=library)
        self._create = script("create_account", _CREATE)
        self._set_disabled = script("set_disabled", _SET_DISABLED)
        self._rotate = script("rotate", _ROTATE)
        self._list = runner.script("list_accounts", _LIST, ListResult, keyspace=ACCOUNTS, library=_LIBRARY)

    async def create(self, name: str, role: Role) -> tuple[Account, str]:
        """Create an account; returns it with its API key, which is not stored and cannot be shown again."""
        account = Account(id=secrets.token_hex(8), name=name, role=role, created_at=time.time())
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        await self._create(self._base, account.id, name, role.value, "0", str(account.created_at), _digest(api_key))
        return account, api_key

    async def get(self, account_id: str) -> Account:
        fields = cast(dict[str, str], await self._redis.hgetall(ACCOUNTS.key(self._base, "account", account_id)))
        if not fields:
            raise NotFound(f"no account {account_id}", code="account_not_found")
        return _from_hash(fields)

    async def list(self) -> list[Account]:
        result = await self._list(self._base)
        return sorted(result.accounts, key=lambda a: (a.role, a.name))

    async def set_disabled(self, account_id: str, disabled: bool) -> Account:
        """Disable (or enable) an account; disabling announces ``AccountRevoked(reason="disabled")``."""
        result = await self._set_disabled(self._base, account_id, "1" if disabled else "0")
        account = _found(result, account_id)
        if disabled:
            await self._announce(account_id, RevocationReason.DISABLED)
        return account

    async def rotate(self, account_id: str) -> str:
        """Replace the account's API key; the old one stops working at once."""
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        _found(await self._rotate(self._base, account_id, _digest(api_key)), account_id)
        await self._announce(account_id, RevocationReason.ROTATED)
        return api_key

    async def migrate_legacy(self, prefix: str = "acct:") -> int:
        """Copy the accounts of the keys before the hash tag (``acct:<id>`` ...) into ``ACCOUNTS``; how many.

        Their API keys keep working (the digest moves with them). Run once on the old single Redis; the old keys
        stay in place, and an account already in ``ACCOUNTS`` is left alone, so running it again never brings back a
        key rotated (or an account enabled or disabled) since.
        """
        copied = 0
        for account_id in sorted(cast(set[str], await self._redis.smembers(f"{prefix}ids"))):
            fields = cast(dict[str, str], await self._redis.hgetall(f"{prefix}{account_id}"))
            if not fields.get("key_digest") or await self._redis.exists(
                ACCOUNTS.key(self._base, "account", account_id)
            ):
                continue
            await self._create(
                self._base,
                account_id,
                fields["name"],
                fields["role"],
                fields.get("disabled", "0"),
                fields.get("created_at", "0"),
                fields["key_digest"],
            )
            copied += 1
        return copied

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
        return (await self.admit(api_key, ip="")).account

    async def authenticate_request(self, request: web.Request, *roles: Role) -> Account:
        """Authenticate the request's bearer key and require one of ``roles``."""
        account = await self.authenticate(bearer_key(request))
        return account.require(*roles) if roles else account

    async def admit(self, api_key: str | None, *budgets: Budget, ip: str) -> Admission:
        """The enabled account owning ``api_key``, with a slot of each of ``budgets`` taken in the same step (per-IP
        budgets for ``ip``; skipped when it is empty), or none of them: ``Unauthorized`` if the key is unknown,
        ``Forbidden`` if the account is disabled, ``RateLimited`` if a budget is full."""
        if not api_key:
            raise Unauthorized()
        if not KEY_SHAPE.fullmatch(api_key):
            raise Unauthorized("unknown API key", code="invalid_api_key")
        return await self._admitted(
            "key", _digest(api_key), budgets, ip, Unauthorized("unknown API key", code="invalid_api_key")
        )

    async def admit_id(self, account_id: str, *budgets: Budget, ip: str) -> Admission:
        """``admit`` for an account another service authenticated (``NotFound`` if there is no such account)."""
        return await self._admitted(
            "id", account_id, budgets, ip, NotFound(f"no account {account_id}", code="account_not_found")
        )

    async def give_back(self, admission: Admission, *budgets: Budget) -> None:
        """Give back the slot ``admission`` took of each of ``budgets`` (a PIN lookup whose PIN was live)."""
        args = [item for b in budgets if b in admission.budgets for item in (admission.subject(b), b.name)]
        if args:
            await self._give_back(self._base, *args)

    async def budget_used(self, budget: Budget, subject: str) -> int:
        """Slots of ``budget`` taken by ``subject`` (an account id, or a client IP) in the current window."""
        return int(await self._redis.get(ACCOUNTS.key(self._base, "budget", subject, budget.name)) or 0)

    async def _admitted(
        self, how: str, name: str, budgets: tuple[Budget, ...], ip: str, missing: Exception
    ) -> Admission:
        budgets = tuple(b for b in budgets if ip or not b.per_ip)
        args: list[str | int] = [how, name]
        for b in budgets:
            args += [ip if b.per_ip else ACCOUNT_SUBJECT, b.name, b.limit, b.window_s * 1000]
        result = await self._admit(self._base, *args)
        if result.account is None:
            raise missing
        if result.account.disabled:
            raise Forbidden("account is disabled", code="account_disabled")
        if not result.granted:
            raise RateLimited(retry_after=-(-result.retry_after_ms // 1000))
        return Admission(account=result.account, ip=ip, budgets=budgets, counts=result.counts)


def _found(result: AccountResult, account_id: str) -> Account:
    if result.account is None:
        raise NotFound(f"no account {account_id}", code="account_not_found")
    return result.account

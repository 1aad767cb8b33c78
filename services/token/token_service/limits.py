"""The token service's rate limits, all kept in Redis so they hold across replicas.

Every limit is a reservation taken before the work it guards (``shared.ratelimit``): N concurrent requests
cost N slots and at most ``limit`` get through. A PIN lookup reserves its agent-token slot and its per-account and
per-IP guess slots in one script (all or nothing) and gives the guess slots back when the PIN was live, so agents
typing live PINs are never slowed while a burst of wrong guesses reaches the registry at most ``limit`` times.

Customer tokens are the hot path (thousands per second), so their limit batches: every hit that arrives while a
Redis round trip is in flight goes out in the next one, as one script call for the whole batch. Each hit still
takes its slot in Redis before its request is answered, with the same fixed-window semantics and keys as
``shared.ratelimit.RateLimit``; batching only removes the per-call client overhead (about 60 us of Python per
round trip) from every request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from shared.errors import RateLimited
from shared.ratelimit import RateLimit, Reservation, reserve
from shared.redis_conn import RedisClient
from shared.scriptbatch import Coalescer, ScriptBatch, fail_all

from .settings import Settings

__all__ = ["BatchedRateLimit", "Limits", "guess_probability"]

# KEYS[i]: the counters of this batch; ARGV[1]: window (ms); ARGV[2]: limit; ARGV[i + 2]: slots asked for KEYS[i].
# Each key grants what is left of its budget, up to what was asked, and counts only what it granted, so a burst
# never pushes a counter past the limit. Reply per key: granted, count after the grant, ms left in the window.
_RESERVE_MANY = """
local out = {}
local limit = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  local granted = math.max(0, math.min(tonumber(ARGV[i + 2]), limit - n))
  if granted > 0 then n = redis.call('INCRBY', key, granted) end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    if granted > 0 then redis.call('PEXPIRE', key, ARGV[1]) end
    ttl = tonumber(ARGV[1])
  end
  out[3 * i - 2] = granted
  out[3 * i - 1] = n
  out[3 * i] = ttl
end
return out
"""


@dataclass(frozen=True)
class BatchGrant:
    """The batch script's answer for one key."""

    granted: int
    count: int
    """The key's count after this batch."""
    ttl_ms: int

    @classmethod
    def decode_all(cls, reply: list[int]) -> list[BatchGrant]:
        values = [int(v) for v in reply]
        return [cls(*values[i : i + 3]) for i in range(0, len(values), 3)]


Hit = tuple[str, asyncio.Future[int]]


class BatchedRateLimit(Coalescer[Hit]):
    """At most ``limit`` hits per ``window_s`` seconds per key, with concurrent hits sent to Redis together."""

    def __init__(self, redis: RedisClient, name: str, *, limit: int, window_s: int) -> None:
        super().__init__()
        self._prefix = f"rl:{name}:"
        self.limit = limit
        self.window_ms = window_s * 1000
        self._script = redis.register_script(_RESERVE_MANY)

    async def hit(self, key: str) -> int:
        """Reserve one slot for ``key``; returns its count in this window or raises ``RateLimited``."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue((key, future))
        return await future

    async def _send(self, batch: list[Hit]) -> None:
        by_key: dict[str, list[asyncio.Future[int]]] = {}
        for key, future in batch:
            by_key.setdefault(key, []).append(future)
        try:
            reply = await self._script(
                keys=[self._prefix + k for k in by_key], args=[self.window_ms, self.limit, *map(len, by_key.values())]
            )
        except Exception as exc:
            fail_all((future for _, future in batch), exc)
            return
        for waiters, grant in zip(by_key.values(), BatchGrant.decode_all(reply), strict=True):
            # The first ``granted`` waiters of a key (in arrival order) get its slots, with consecutive counts.
            first = grant.count - grant.granted + 1
            for i, future in enumerate(waiters):
                if future.done():
                    continue
                if i < grant.granted:
                    future.set_result(first + i)
                else:
                    future.set_exception(RateLimited(retry_after=-(-grant.ttl_ms // 1000)))


@dataclass(frozen=True)
class Limits:
    customer_tokens: BatchedRateLimit
    """Per client IP."""
    agent_tokens: RateLimit
    """Agent-token requests per account (every attempt, live PIN or not)."""
    starts: RateLimit
    """``/api/customer/start`` per client IP."""
    pin_guesses_agent: RateLimit
    """PIN lookups per account that missed (or are in flight); a lookup that finds a live PIN gives its slot back."""
    pin_guesses_ip: RateLimit
    """The same per client IP, across every account behind it."""

    @classmethod
    def create(cls, scripts: ScriptBatch, settings: Settings) -> Limits:
        """Every limit runs its scripts through ``scripts``, so concurrent calls share round trips."""
        s = settings
        redis = scripts.redis

        def limit(name: str, count: int, window_s: int) -> RateLimit:
            return RateLimit(scripts, f"token:{name}", limit=count, window_s=window_s)

        return cls(
            customer_tokens=BatchedRateLimit(
                redis, "token:customer", limit=s.customer_tokens_per_window, window_s=s.rate_window_s
            ),
            agent_tokens=limit("agent", s.agent_tokens_per_window, s.rate_window_s),
            starts=limit("start", s.starts_per_window, s.rate_window_s),
            pin_guesses_agent=limit("pin:agent", s.pin_failures_per_agent, s.pin_window_s),
            pin_guesses_ip=limit("pin:ip", s.pin_failures_per_ip, s.pin_window_s),
        )

    async def reserve_guess(self, account_id: str, client_ip: str) -> Reservation:
        """One agent-token attempt and one PIN guess for the account and its IP, all taken in one script or none."""
        slots = [self.agent_tokens.slot(account_id), self.pin_guesses_agent.slot(account_id)]
        if client_ip:
            slots.append(self.pin_guesses_ip.slot(client_ip))
        return await reserve(*slots)

    async def return_guess(self, reservation: Reservation) -> None:
        """Give back the guess slots of a lookup that found a live PIN (the agent-token slot stays taken)."""
        await reservation.release(self.pin_guesses_agent, self.pin_guesses_ip)


def guess_probability(
    *,
    per_key: int,
    per_ip: int,
    window_s: int,
    keys: int = 10,
    live_pins: int = 100,
    pin_space: int = 10**6,
    period_s: int = 3600,
) -> float:
    """The chance that one client IP hits at least one live PIN within ``period_s``.

    Args:
        per_key: lookups one account got through to the registry in one window (measured in a burst test).
        per_ip: lookups one IP got through in one window, across all its accounts (measured likewise).
        window_s: the guessing window (``TOKEN_PIN_WINDOW_S``).
        keys: agent keys the attacker holds behind the one IP.
        live_pins: live sessions, each with a distinct PIN, at any moment.
        pin_space: possible PINs (Zoom's PINs are 6 digits).
        period_s: how long the attacker keeps going.

    The attacker gets ``min(keys * per_key, per_ip)`` lookups per window, ``period_s / window_s`` windows (the
    long-run rate; a fixed window lets up to one more window's worth through at the edges of the period), and
    never guesses the same PIN twice, each guess hitting with chance ``live_pins / remaining PINs``.
    """
    guesses = min(keys * per_key, per_ip) * period_s // window_s
    if guesses > pin_space - live_pins:
        return 1.0
    miss = 1.0
    for tried in range(guesses):
        miss *= 1 - live_pins / (pin_space - tried)
    return 1.0 - miss

"""The token service's rate limits, all kept in Redis so they hold across replicas.

Customer tokens are the hot path (thousands per second), so their limit batches: every hit that arrives while a
Redis round trip is in flight goes out in the next one, as one script call for the whole batch. Each hit is still
counted in Redis before its request is answered, with the same fixed-window semantics and keys as
``shared.ratelimit.RateLimit``; batching only removes the per-call client overhead (about 60 us of Python per
round trip) from every request. The low-volume limits use ``RateLimit`` directly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.errors import RateLimited
from shared.ratelimit import RateLimit

from .settings import Settings

__all__ = ["BatchedRateLimit", "Limits"]

# For each key: INCRBY its hits in this batch, then start the window if the key is new (as shared RateLimit does).
# One script per batch keeps INCR and EXPIRE atomic; all keys must live on one Redis (no cluster slots).
_HIT_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCRBY', key, ARGV[i + 1])
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  out[2 * i - 1] = n
  out[2 * i] = ttl
end
return out
"""

Waiters = list[asyncio.Future[tuple[int, int]]]


class BatchedRateLimit:
    """At most ``limit`` hits per ``window_s`` seconds per key, with concurrent hits sent to Redis together."""

    def __init__(self, redis: Redis, name: str, *, limit: int, window_s: int) -> None:
        self._prefix = f"rl:{name}:"
        self.limit = limit
        self.window_ms = window_s * 1000
        self._script = redis.register_script(_HIT_MANY)
        self._pending: dict[str, Waiters] = {}
        self._sender: asyncio.Task[None] | None = None

    async def hit(self, key: str) -> int:
        """Count one hit for ``key``; raise ``RateLimited`` past the limit."""
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(future)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_pending())
        count, ttl_ms = await future
        if count > self.limit:
            raise RateLimited(retry_after=-(-ttl_ms // 1000))
        return count

    async def _send_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, {}
                await self._send(batch)
        finally:
            self._sender = None

    async def _send(self, batch: dict[str, Waiters]) -> None:
        keys = list(batch)
        try:
            flat = await self._script(
                keys=[self._prefix + k for k in keys], args=[self.window_ms, *map(len, batch.values())]
            )
        except Exception as exc:  # every waiter gets the error; the edge turns it into a 500
            for waiters in batch.values():
                for future in waiters:
                    if not future.done():
                        future.set_exception(exc)
            return
        for i, waiters in enumerate(batch.values()):
            total, ttl_ms = int(flat[2 * i]), int(flat[2 * i + 1])
            # The hits of one key in one batch get consecutive counts, in arrival order.
            for n, future in enumerate(waiters, start=total - len(waiters) + 1):
                if not future.done():
                    future.set_result((n, ttl_ms))


@dataclass(frozen=True)
class Limits:
    customer_tokens: BatchedRateLimit
    """Per client IP."""
    agent_tokens: RateLimit
    """Per account."""
    starts: RateLimit
    """``/api/customer/start`` per client IP."""
    pin_failures_agent: RateLimit
    """Failed PIN lookups per account; checked before a lookup, counted after a failed one."""
    pin_failures_ip: RateLimit
    """Failed PIN lookups per client IP."""

    @classmethod
    def create(cls, redis: Redis, settings: Settings) -> Limits:
        s = settings

        def limit(name: str, count: int, window_s: int) -> RateLimit:
            return RateLimit(redis, f"token:{name}", limit=count, window_s=window_s)

        return cls(
            customer_tokens=BatchedRateLimit(
                redis, "token:customer", limit=s.customer_tokens_per_window, window_s=s.rate_window_s
            ),
            agent_tokens=limit("agent", s.agent_tokens_per_window, s.rate_window_s),
            starts=limit("start", s.starts_per_window, s.rate_window_s),
            pin_failures_agent=limit("pin:agent", s.pin_failures_per_agent, s.pin_window_s),
            pin_failures_ip=limit("pin:ip", s.pin_failures_per_ip, s.pin_window_s),
        )

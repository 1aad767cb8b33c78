"""Fixed-window rate limits kept in Redis, so they hold across every replica of a service."""

from __future__ import annotations

from redis.asyncio import Redis

from .errors import RateLimited

__all__ = ["RateLimit"]

# INCR and EXPIRE in one script: a crash between them would leave a counter that never expires.
_HIT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""


class RateLimit:
    """At most ``limit`` hits per ``window_s`` seconds for each key.

    ``hit`` counts and raises ``RateLimited`` when over; ``check`` only raises, for limits that count failures
    (call ``hit`` after a failure, ``check`` before the attempt).
    """

    def __init__(self, redis: Redis, name: str, *, limit: int, window_s: int) -> None:
        self._redis = redis
        self._prefix = f"rl:{name}:"
        self.limit = limit
        self.window_ms = window_s * 1000
        self._hit = redis.register_script(_HIT)

    async def hit(self, key: str, amount: int = 1) -> int:
        count, ttl_ms = await self._hit(keys=[self._prefix + key], args=[self.window_ms, amount])
        if count > self.limit:
            raise RateLimited(retry_after=-(-int(ttl_ms) // 1000))
        return int(count)

    async def check(self, key: str) -> None:
        """Raise ``RateLimited`` if the key has no hit left in this window."""
        count, ttl_ms = await self._hit(keys=[self._prefix + key], args=[self.window_ms, 0])
        if count >= self.limit:
            raise RateLimited(retry_after=-(-int(ttl_ms) // 1000))

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

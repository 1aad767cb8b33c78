"""A lease in Redis: at most one process of a fleet holds it at a time (the outbox publishers use one each).

Failure model: the holder renews the lease a third of its lifetime before it lapses; a holder that dies or loses
Redis simply stops renewing, and another process takes the lease once it has expired (at most ``ttl_s`` later).
Taking, renewing and releasing each compare the owner in one script, so a process never extends or deletes a
lease another process holds.
"""

from __future__ import annotations

import time
import uuid

from redis.exceptions import RedisError

from .redis_conn import RedisClient

__all__ = ["Lease"]

_HOLD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    def __init__(self, redis: RedisClient, key: str, ttl_s: float) -> None:
        self.key = key
        self.owner = uuid.uuid4().hex
        self._ttl_s = ttl_s
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)
        self._renew_at = 0.0

    async def hold(self) -> bool:
        """Take or renew the lease; ``True`` while this process holds it (Redis is asked a third of a TTL apart)."""
        now = time.monotonic()
        if now < self._renew_at:
            return True
        if await self._hold(keys=[self.key], args=[self.owner, int(self._ttl_s * 1000)]):
            self._renew_at = now + self._ttl_s / 3
            return True
        self._renew_at = 0.0
        return False

    async def release(self) -> bool:
        """Hand the lease over at once (at shutdown); if Redis is gone it simply expires. ``True`` if it was ours."""
        self._renew_at = 0.0
        try:
            return bool(await self._release(keys=[self.key], args=[self.owner]))
        except RedisError:
            return False

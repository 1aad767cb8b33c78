"""Fixed-window rate limits kept in Redis, so they hold across every replica of a service.

Every limit is a **reservation**: a request takes its slot atomically *before* the work it guards, in one Lua
script, so N concurrent requests cost N slots and never more than ``limit`` of them get through, whatever the
interleaving. Several limits (say per account and per client IP) are reserved together in one script: either every
budget has room and each gives one slot, or nothing is taken and ``RateLimited`` is raised with the longest
``Retry-After`` among the full ones. A request whose outcome should not count (a PIN guess that hit a live PIN)
gives its slots back with ``Reservation.release``.

Failure model: a Redis error propagates unchanged (the edge answers 503); a slot taken by a process that dies before
it could release stays taken until its window ends, which errs on the side of the limit. A release that arrives
after its window rolled over gives a slot back to the next window (bounded by the few milliseconds a lookup takes).

Keys: ``rl:<name>:<subject>`` (a counter, expiring at the end of the window that created it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import RateLimited
from .redis_conn import RedisClient
from .scriptbatch import ScriptBatch

__all__ = ["RateLimit", "Reservation", "Slot", "reserve"]

# KEYS[i]: counters; ARGV[1]: slots per key; ARGV[2i], ARGV[2i+1]: limit and window (ms) of KEYS[i].
# Reply: {1, 0, count_1, ..., count_n} when granted; {0, retry_after_ms} when any budget is full (nothing taken).
_RESERVE = """
local amount = tonumber(ARGV[1])
local refused, wait = false, 0
local counts = {}
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0') + amount
  counts[i] = n
  if n > tonumber(ARGV[2 * i]) then
    refused = true
    local ttl = redis.call('PTTL', key)
    if ttl <= 0 then ttl = tonumber(ARGV[2 * i + 1]) end
    if ttl > wait then wait = ttl end
  end
end
if refused then return {0, wait} end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, amount)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[2 * i + 1]) end
end
return {1, 0, unpack(counts)}
"""

# KEYS[i]: counters to give ARGV[1] slots back to; a counter whose window already ended is left alone.
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 and redis.call('DECRBY', key, ARGV[1]) < 0 then
    redis.call('SET', key, 0, 'KEEPTTL')
  end
end
return 0
"""


@dataclass(frozen=True)
class ReserveReply:
    """The reserve script's answer."""

    granted: bool
    retry_after_ms: int
    counts: tuple[int, ...]
    """Each budget's count including this reservation (empty when refused)."""

    @classmethod
    def decode(cls, reply: Sequence[int | bytes | str]) -> ReserveReply:
        granted, retry_after_ms, *counts = (int(v) for v in reply)
        return cls(granted=granted == 1, retry_after_ms=retry_after_ms, counts=tuple(counts))


class RateLimit:
    """At most ``limit`` slots per ``window_s`` seconds for each subject (an IP, an account id)."""

    def __init__(self, redis: RedisClient | ScriptBatch, name: str, *, limit: int, window_s: int) -> None:
        # Limits that share a ScriptBatch share round trips too (see shared.scriptbatch).
        self.scripts = redis if isinstance(redis, ScriptBatch) else ScriptBatch(redis)
        self.redis = self.scripts.redis
        self.prefix = f"rl:{name}:"
        self.limit = limit
        self.window_s = window_s
        self.window_ms = window_s * 1000
        self.reserve_script = self.scripts.register(_RESERVE)
        self.release_script = self.scripts.register(_RELEASE)

    def slot(self, subject: str) -> Slot:
        """This limit's budget for ``subject``, to reserve together with others."""
        return Slot(self, subject)

    async def hit(self, subject: str) -> int:
        """Reserve one slot for ``subject``; returns its count in this window, or raises ``RateLimited``."""
        reservation = await reserve(self.slot(subject))
        return reservation.counts[0]

    async def count(self, subject: str) -> int:
        """Slots taken by ``subject`` in the current window."""
        return int(await self.redis.get(self.prefix + subject) or 0)

    async def reset(self, subject: str) -> None:
        await self.redis.delete(self.prefix + subject)


@dataclass(frozen=True)
class Slot:
    limit: RateLimit
    subject: str

    @property
    def key(self) -> str:
        return self.limit.prefix + self.subject


@dataclass(frozen=True)
class Reservation:
    """Slots taken by one request; ``counts`` lines up with the slots reserved."""

    slots: tuple[Slot, ...]
    counts: tuple[int, ...]

    async def release(self, *limits: RateLimit) -> None:
        """Give back this reservation's slots of ``limits`` (all of them when none are named)."""
        keys = [s.key for s in self.slots if not limits or s.limit in limits]
        if keys:
            limit = self.slots[0].limit
            await limit.scripts.run(limit.release_script, keys, [1])


async def reserve(*slots: Slot) -> Reservation:
    """Take one slot of every budget in ``slots`` atomically, or none; ``RateLimited`` if any is full.

    Every slot's limit must use the same Redis (they share one script call).
    """
    if not slots:
        return Reservation((), ())
    args: list[int] = [1]
    for slot in slots:
        args += [slot.limit.limit, slot.limit.window_ms]
    limit = slots[0].limit
    raw = await limit.scripts.run(limit.reserve_script, [s.key for s in slots], args)
    reply = ReserveReply.decode(raw)
    if not reply.granted:
        raise RateLimited(retry_after=-(-reply.retry_after_ms // 1000))
    return Reservation(slots, reply.counts)

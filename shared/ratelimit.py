"""Fixed-window rate limits kept in Redis, so they hold across every replica of a service (and a Redis Cluster).

Every limit is a **reservation**: a request takes its slot atomically *before* the work it guards, in a Lua script,
so N concurrent requests cost N slots and never more than ``limit`` of them get through, whatever the interleaving.
A request whose outcome should not count (a PIN guess that hit a live PIN) gives its slots back with
``Reservation.release``.

The budgets of one **subject** (an IP, an account id) share a slot: the subject is the hash tag of their keys, so
several limits of one subject (an account's agent tokens and its PIN guesses) are reserved in one script, all or
nothing. Budgets of different subjects (an account's and its client IP's) live in different slots, so ``reserve``
runs one script per subject, all at once (one shared round trip): when a subject's budget is full, the slots the
others took are given back before ``RateLimited`` is raised, with the longest ``Retry-After`` of the full budgets.
No budget ever counts more than its limit at any moment, so "at most ``limit`` got through" holds exactly, on one
Redis and on a cluster alike; a request refused at one subject only held the others' slots for that round trip.

Failure model: a Redis error propagates unchanged (the edge answers 503). A slot taken by a process that dies
(or meets a Redis error) before it could finish or give it back stays taken until its window ends, which errs on the
side of the limit. A release that arrives after its window rolled over gives nothing back (the counter is gone).

Keys: ``rl:{<subject>}:<name>`` (a counter, expiring at the end of the window that created it).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from .batching import Batcher
from .errors import RateLimited
from .redis_conn import RedisClient
from .scripts import Keyspace, ScriptRunner

__all__ = ["SUBJECTS", "RateLimit", "Released", "Reservation", "Reserved", "Slot", "reserve"]

HITS_MAX = 1000
"""Most hits answered by one round of grants."""

SUBJECTS = Keyspace("rl:", "{}", counter="{}")
"""One slot per subject: ``rl:{<subject>}`` is the base, ``rl:{<subject>}:<limit name>`` each counter."""

# ARGV: name, limit, window (ms) of each budget of the subject. All of them take a slot, or none.
_RESERVE = """
local refused, wait, counts = false, 0, {}
for i = 1, #ARGV, 3 do
  local key = k_counter(ARGV[i])
  local n = tonumber(redis.call('GET', key) or '0') + 1
  counts[#counts + 1] = n
  if n > tonumber(ARGV[i + 1]) then
    refused = true
    local ttl = redis.call('PTTL', key)
    if ttl <= 0 then ttl = tonumber(ARGV[i + 2]) end
    if ttl > wait then wait = ttl end
  end
end
if refused then return { granted = false, retry_after_ms = wait } end
for i = 1, #ARGV, 3 do
  local key = k_counter(ARGV[i])
  redis.call('INCR', key)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[i + 2]) end
end
return { granted = true, retry_after_ms = 0, counts = counts }
"""

# ARGV: names of the subject's budgets to give one slot back to; a counter whose window ended is left alone.
_RELEASE = """
local released = 0
for _, name in ipairs(ARGV) do
  local key = k_counter(name)
  if redis.call('EXISTS', key) == 1 then
    released = released + 1
    if redis.call('DECR', key) < 0 then redis.call('SET', key, 0, 'KEEPTTL') end
  end
end
return { released = released }
"""


@dataclass(frozen=True)
class Reserved:
    """The reserve script's answer for one subject."""

    granted: bool
    retry_after_ms: int
    counts: tuple[int, ...]
    """Each budget's count including this reservation, in the order asked (empty when refused)."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(
            granted=bool(raw["granted"]),
            retry_after_ms=int(raw["retry_after_ms"]),
            counts=tuple(int(n) for n in raw.get("counts") or ()),  # an empty Lua table arrives as {}
        )


# ARGV: name, limit, window (ms) of one budget, and the slots asked for at once. Grants what is left of the budget,
# up to what was asked, and counts only what it granted, so no burst pushes the counter past the limit.
_GRANT = """
local key = k_counter(ARGV[1])
local limit, window, asked = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = tonumber(redis.call('GET', key) or '0')
local granted = math.max(0, math.min(asked, limit - n))
if granted > 0 then n = redis.call('INCRBY', key, granted) end
local ttl = redis.call('PTTL', key)
if ttl < 0 then
  if granted > 0 then redis.call('PEXPIRE', key, window) end
  ttl = window
end
return { granted = granted, count = n, ttl_ms = ttl }
"""


@dataclass(frozen=True)
class Granted:
    """The grant script's answer: slots granted, the counter after them, ms left in the window."""

    granted: int
    count: int
    ttl_ms: int

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(granted=int(raw["granted"]), count=int(raw["count"]), ttl_ms=int(raw["ttl_ms"]))


@dataclass(frozen=True)
class Released:
    """The release script's answer: how many counters still existed and gave a slot back."""

    released: int

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(released=int(raw["released"]))


class RateLimit:
    """At most ``limit`` slots per ``window_s`` seconds for each subject (an IP, an account id).

    ``redis`` is a client, or a ``ScriptRunner`` shared with the service's other scripts (concurrent calls then
    share round trips).
    """

    def __init__(self, redis: RedisClient | ScriptRunner, name: str, *, limit: int, window_s: int) -> None:
        self.runner = redis if isinstance(redis, ScriptRunner) else ScriptRunner(redis)
        self.redis = self.runner.redis
        self.name = name
        self.limit = limit
        self.window_s = window_s
        self.window_ms = window_s * 1000
        self.reserve_script = self.runner.script("reserve", _RESERVE, Reserved, keyspace=SUBJECTS)
        self.release_script = self.runner.script("release", _RELEASE, Released, keyspace=SUBJECTS)
        self._grant_script = self.runner.script("grant", _GRANT, Granted, keyspace=SUBJECTS)
        self._hits: Batcher[str, int] = Batcher(self._grant, max_batch=HITS_MAX)
        """Hits of any subject waiting for the next grant (``batching.py``)."""

    def slot(self, subject: str) -> Slot:
        """This limit's budget for ``subject``, to reserve together with others."""
        return Slot(self, subject)

    def key(self, subject: str) -> str:
        return SUBJECTS.key(SUBJECTS.base(subject), "counter", self.name)

    async def hit(self, subject: str) -> int:
        """Reserve one slot for ``subject``; returns its count in this window, or raises ``RateLimited``.

        The hits of one subject that arrive while its grant is in flight go out together, as one grant of as many
        slots (the customer-token limit runs thousands of times a second, often for one address behind a proxy):
        the first of them get what is left of the budget, in arrival order, the others ``RateLimited``.
        """
        return await self._hits.submit(subject)

    async def _grant(self, subjects: list[str]) -> list[int | BaseException]:
        """One grant per subject for its hits (one round trip for all): the first of them get what is left of its
        budget, in arrival order, the others ``RateLimited``; a Redis error fails only that subject's hits."""
        asked = Counter(subjects)
        script = self._grant_script
        calls = [script(SUBJECTS.base(s), self.name, self.limit, self.window_ms, n) for s, n in asked.items()]
        # Mostly one subject (one address behind a proxy): awaited as it is, since gather would wrap it in a task.
        grants: list[Granted | BaseException]
        grants = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls, return_exceptions=True)
        by_subject = dict(zip(asked, grants, strict=True))
        seen: Counter[str] = Counter()
        answers: list[int | BaseException] = []
        for subject in subjects:
            grant = by_subject[subject]
            if isinstance(grant, BaseException):
                answers.append(grant)
                continue
            i, seen[subject] = seen[subject], seen[subject] + 1
            if i < grant.granted:
                answers.append(grant.count - grant.granted + 1 + i)
            else:
                answers.append(RateLimited(retry_after=-(-grant.ttl_ms // 1000)))
        return answers

    async def count(self, subject: str) -> int:
        """Slots taken by ``subject`` in the current window."""
        return int(await self.redis.get(self.key(subject)) or 0)

    async def reset(self, subject: str) -> None:
        await self.redis.delete(self.key(subject))


@dataclass(frozen=True)
class Slot:
    limit: RateLimit
    subject: str


def _by_subject(slots: Sequence[Slot]) -> dict[str, list[Slot]]:
    groups: dict[str, list[Slot]] = {}
    for slot in slots:
        groups.setdefault(slot.subject, []).append(slot)
    return groups


@dataclass(frozen=True)
class Reservation:
    """Slots taken by one request; ``counts`` lines up with the slots reserved."""

    slots: tuple[Slot, ...]
    counts: tuple[int, ...]

    async def release(self, *limits: RateLimit) -> None:
        """Give back this reservation's slots of ``limits`` (all of them when none are named)."""
        slots = [s for s in self.slots if not limits or s.limit in limits]
        await asyncio.gather(
            *(
                group[0].limit.release_script(SUBJECTS.base(subject), *(s.limit.name for s in group))
                for subject, group in _by_subject(slots).items()
            )
        )


async def reserve(*slots: Slot) -> Reservation:
    """Take one slot of every budget in ``slots``, or none; ``RateLimited`` if any is full.

    The budgets of one subject are taken in one script; the subjects at once (see the module docstring). Every
    slot's limit must use the same Redis.
    """
    groups = list(_by_subject(slots).values())
    replies = await asyncio.gather(*map(_reserve_subject, groups), return_exceptions=True)
    taken: dict[Slot, int] = {}
    for group, reply in zip(groups, replies, strict=True):
        if isinstance(reply, Reserved) and reply.granted:
            taken.update(zip(group, reply.counts, strict=True))
    if len(taken) < len(slots):
        await Reservation(tuple(taken), ()).release()
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        wait_ms = max(r.retry_after_ms for r in replies if isinstance(r, Reserved) and not r.granted)
        raise RateLimited(retry_after=-(-wait_ms // 1000))
    return Reservation(slots, tuple(taken[slot] for slot in slots))


async def _reserve_subject(group: list[Slot]) -> Reserved:
    args: list[str | int] = []
    for slot in group:
        args += [slot.limit.name, slot.limit.limit, slot.limit.window_ms]
    return await group[0].limit.reserve_script(SUBJECTS.base(group[0].subject), *args)

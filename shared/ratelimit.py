"""Fixed-window rate limits kept in Redis, so they hold across every replica of a service (and a Redis Cluster).

Every limit is a **reservation**: a request takes its slot atomically *before* the work it guards, in a Lua script,
so N concurrent requests cost N slots and never more than ``limit`` of them get through, whatever the interleaving.

Two kinds:

- :class:`RateLimit`, per subject (a client IP): ``hit`` takes one slot of the subject's budget. Its counters are
  ``rl:{<subject>}:<name>``, one slot per subject. The hits that arrive while a round trip is in flight go out as one
  grant per subject (``batching.py``).
- :class:`Budget`, reserved together with an authentication (``accounts.AccountStore.admit``): the budgets an
  account's request needs (its agent tokens, its PIN guesses, its client IP's PIN guesses) live beside the accounts,
  in their one slot, so that finding the account and taking every budget is one script, all or none, and a request
  whose outcome should not count (a PIN guess that hit a live PIN) gives its slots back in one more. ``BUDGETS_LUA``
  is that reservation logic, written once.

No budget ever counts more than its limit at any moment, so "at most ``limit`` got through" holds exactly, on one
Redis and on a cluster alike.

Failure model: a Redis error propagates unchanged (the edge answers 503). A slot taken by a process that dies
(or meets a Redis error) before it could finish or give it back stays taken until its window ends, which errs on the
side of the limit. A slot given back after its window rolled over gives nothing back (the counter is gone).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any, Self

from .batching import Batcher
from .errors import RateLimited
from .redis_conn import RedisClient
from .scripts import Keyspace, ScriptRunner

__all__ = ["BUDGETS_LUA", "SUBJECTS", "Budget", "RateLimit"]

HITS_MAX = 1000
"""Most hits answered by one round of grants."""

SUBJECTS = Keyspace("rl:", "{}", counter="{}")
"""One slot per subject: ``rl:{<subject>}`` is the base, ``rl:{<subject>}:<limit name>`` each counter."""

BUDGETS_LUA = """
-- Takes one slot of every budget ({key, limit, window ms}), or none: the reply of a reservation.
local function take(budgets)
  local refused, wait, counts = false, 0, {}
  for _, b in ipairs(budgets) do
    local n = tonumber(redis.call('GET', b[1]) or '0') + 1
    counts[#counts + 1] = n
    if n > b[2] then
      refused = true
      local ttl = redis.call('PTTL', b[1])
      if ttl <= 0 then ttl = b[3] end
      if ttl > wait then wait = ttl end
    end
  end
  if refused then return { granted = false, retry_after_ms = wait } end
  for _, b in ipairs(budgets) do
    redis.call('INCR', b[1])
    if redis.call('PTTL', b[1]) < 0 then redis.call('PEXPIRE', b[1], b[3]) end
  end
  return { granted = true, retry_after_ms = 0, counts = counts }
end

-- Gives one slot back to each counter; a counter whose window ended is left alone. How many gave one back.
local function give_back(keys)
  local released = 0
  for _, key in ipairs(keys) do
    if redis.call('EXISTS', key) == 1 then
      released = released + 1
      if redis.call('DECR', key) < 0 then redis.call('SET', key, 0, 'KEEPTTL') end
    end
  end
  return released
end
"""
"""The reservation logic of :class:`Budget`\\ s: ``take(budgets)``, all or none, and ``give_back(keys)``."""


@dataclass(frozen=True)
class Budget:
    """At most ``limit`` slots per ``window_s`` seconds for each account (or, ``per_ip``, each client IP), reserved
    in the same step as the authentication that finds the account (see the module docstring)."""

    name: str
    limit: int
    window_s: int
    per_ip: bool = False
    """Counted per client IP, across every account behind it, instead of per account."""


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


class RateLimit:
    """At most ``limit`` slots per ``window_s`` seconds for each subject (a client IP).

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
        self._grant_script = self.runner.script("grant", _GRANT, Granted, keyspace=SUBJECTS)
        self._hits: Batcher[str, int] = Batcher(self._grant, max_batch=HITS_MAX)
        """Hits of any subject waiting for the next grant (``batching.py``)."""

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

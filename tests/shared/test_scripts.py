"""The one script layer (shared/scripts.py), on a single Redis and, with ``--topology=cluster``, a Redis Cluster."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest

from devstack.servers import start_redis
from shared.redis_conn import RedisClient, close_redis, redis_client
from shared.scripts import Keyspace, ScriptError, ScriptRunner

pytestmark = pytest.mark.cluster

COUNTERS = Keyspace("t:", "c{}", counter="n:{}", pair="p:{}:{}", total="total")

INCR = """
local v = redis.call('INCRBY', k_counter(ARGV[1]), tonumber(ARGV[2]))
redis.call('INCRBY', K_TOTAL, tonumber(ARGV[2]))
redis.call('SET', k_pair(ARGV[1], 'x'), v)
if ARGV[2] == '13' then error('unlucky') end
return { value = v, at = NOW, limit = C.limit, unit = C.unit }
"""


@dataclass(frozen=True)
class Incr:
    value: int
    at: int
    limit: int
    unit: str

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(**raw)


def _incr(runner: ScriptRunner) -> Any:
    return runner.script("incr", INCR, Incr, keyspace=COUNTERS, constants={"limit": 5, "unit": "ms"})


def test_keyspace_builds_the_same_keys_in_python_and_lua() -> None:
    base = COUNTERS.base(7)
    assert base == "t:{c7}"
    assert COUNTERS.key(base, "pair", "a", "b") == "t:{c7}:p:a:b"
    lua = COUNTERS.lua()
    assert "local function k_pair(a0, a1) return KEYS[1] .. ':' .. 'p:' .. a0 .. ':' .. a1 end" in lua
    assert "local K_TOTAL = KEYS[1] .. ':' .. 'total'" in lua


async def test_a_call_touches_only_its_slot_and_answers_a_typed_reply(redis: RedisClient) -> None:
    script = _incr(ScriptRunner(redis))
    first = await script(COUNTERS.base(1), "a", 2)
    assert (first.value, first.limit, first.unit) == (2, 5, "ms")
    assert first.at > 1_700_000_000_000  # milliseconds
    # Another tag is another slot (on a cluster, usually another node): the same script runs there too.
    await script(COUNTERS.base(2), "a", 3)
    assert await redis.get(COUNTERS.key(COUNTERS.base(1), "counter", "a")) == "2"
    assert await redis.get(COUNTERS.key(COUNTERS.base(2), "total")) == "3"
    assert await redis.get(COUNTERS.key(COUNTERS.base(1), "pair", "a", "x")) == "2"


async def test_concurrent_calls_share_round_trips_and_fail_alone(redis: RedisClient) -> None:
    script = _incr(ScriptRunner(redis, max_batch=16))
    calls = [script(COUNTERS.base(i % 5), "k", 13 if i == 40 else 1) for i in range(200)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], ScriptError) and "unlucky" in str(failed[0])
    totals = [int(await redis.get(COUNTERS.key(COUNTERS.base(i), "total")) or 0) for i in range(5)]
    # The failed call's writes before its error stay (Lua has no rollback): 199 ones and one 13.
    assert sum(totals) == 199 + 13


async def test_a_flushed_script_is_loaded_again(redis: RedisClient) -> None:
    script = _incr(ScriptRunner(redis))
    await script(COUNTERS.base(1), "a", 1)
    await redis.script_flush()
    results = await asyncio.gather(*(script(COUNTERS.base(i), "a", 1) for i in range(10)))
    assert sorted(r.value for r in results) == [1] * 9 + [2]


async def test_a_runner_reconnects_after_its_redis_restarts(tmp_path: Path) -> None:
    # A runner keeps one connection for its round trips: a restart breaks it, and the next call reconnects (and
    # loads the script again, which the new server does not know).
    server = start_redis(tmp_path / "redis")
    client = redis_client(server.url, mode="standalone")
    try:
        script = _incr(ScriptRunner(client))
        assert (await script(COUNTERS.base(1), "a", 1)).value == 1
        server.stop()
        server = start_redis(tmp_path / "redis", server.port)
        results = await asyncio.gather(*(script(COUNTERS.base(1), "a", 1) for _ in range(5)))
        assert sorted(r.value for r in results) == [1, 2, 3, 4, 5]  # the new server started empty
    finally:
        await close_redis(client)
        server.stop()

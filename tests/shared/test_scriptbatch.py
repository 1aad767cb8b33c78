"""Concurrent script calls share round trips; each still gets its own answer or its own error."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from shared.scriptbatch import ScriptBatch

ECHO = "if ARGV[1] == 'boom' then return redis.error_reply('boom') end return {KEYS[1], ARGV[1]}"


async def test_a_burst_shares_connections_and_every_call_gets_its_own_reply(redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True, client_name="batched")
    batch = ScriptBatch(redis)
    echo = batch.register(ECHO)
    replies = await asyncio.gather(*(batch.run(echo, [f"k{i}"], [str(i)]) for i in range(200)))
    assert replies == [[f"k{i}", str(i)] for i in range(200)]
    clients = [c for c in await redis.client_list() if c["name"] == "batched"]
    assert len(clients) <= 2  # one round trip in flight at a time (plus the one asking), not 200
    await redis.aclose()


async def test_a_script_error_fails_only_its_own_call(redis: Redis) -> None:
    batch = ScriptBatch(redis)
    echo = batch.register(ECHO)
    results = await asyncio.gather(
        batch.run(echo, ["a"], ["1"]),
        batch.run(echo, ["b"], ["boom"]),
        batch.run(echo, ["c"], ["3"]),
        return_exceptions=True,
    )
    assert results[0] == ["a", "1"] and results[2] == ["c", "3"]
    assert isinstance(results[1], ResponseError)


async def test_scripts_flushed_from_redis_are_loaded_again(redis: Redis) -> None:
    batch = ScriptBatch(redis)
    echo = batch.register(ECHO)
    assert await batch.run(echo, ["a"], ["1"]) == ["a", "1"]
    await redis.script_flush()
    replies = await asyncio.gather(*(batch.run(echo, [f"k{i}"], [str(i)]) for i in range(5)))
    assert replies == [[f"k{i}", str(i)] for i in range(5)]


async def test_a_connection_error_reaches_every_caller() -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0")
    batch = ScriptBatch(broken)
    echo = batch.register(ECHO)
    results = await asyncio.gather(*(batch.run(echo, ["a"], ["1"]) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RedisConnectionError) for r in results)
    await broken.aclose()

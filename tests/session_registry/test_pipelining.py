"""ScriptPipeline: concurrent calls share round trips, each gets its own answer, scripts reload after a flush."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from session_registry.pipelining import ScriptPipeline

# Busy for ARGV[1] seconds of Redis time, then answers.
SLOW = """
local function now() local t = redis.call('TIME') return tonumber(t[1]) + tonumber(t[2]) / 1e6 end
local stop = now() + tonumber(ARGV[1])
while now() < stop do end
return 'done'
"""
ECHO = "if ARGV[1] == 'boom' then return redis.error_reply('boom') end return 'echo:' .. ARGV[1]"


async def test_concurrent_calls_get_their_own_answers(redis) -> None:
    echo = ScriptPipeline(redis, ECHO, max_batch=8)
    answers = await asyncio.gather(*[echo([str(i)]) for i in range(50)])
    assert answers == [f"echo:{i}" for i in range(50)]


async def test_an_error_reaches_only_its_caller(redis) -> None:
    echo = ScriptPipeline(redis, ECHO)
    ok, failed = await asyncio.gather(echo(["a"]), echo(["boom"]), return_exceptions=True)
    assert ok == "echo:a"
    assert isinstance(failed, ResponseError)


async def test_scripts_are_loaded_again_after_redis_forgets_them(redis) -> None:
    echo = ScriptPipeline(redis, ECHO)
    assert await echo(["1"]) == "echo:1"
    await redis.script_flush()
    assert await asyncio.gather(echo(["2"]), echo(["3"])) == ["echo:2", "echo:3"]


async def test_a_failed_connection_fails_the_waiting_callers() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    echo = ScriptPipeline(client, ECHO)
    with pytest.raises(RedisConnectionError):
        await asyncio.gather(echo(["x"]), echo(["y"]))
    await client.aclose()


async def test_replies_slower_than_the_socket_timeout_fail_the_callers(redis_url: str, redis: Redis) -> None:
    client = Redis.from_url(redis_url, decode_responses=True, socket_timeout=0.1, retry=Retry(NoBackoff(), 0))
    slow = ScriptPipeline(client, SLOW)
    with pytest.raises(RedisTimeoutError):
        await asyncio.gather(slow(["0.3"]), slow(["0"]))
    await redis.ping()  # answered once the slow script is over
    assert await slow(["0"]) == "done"  # a fresh connection replaces the one that timed out
    await client.aclose()

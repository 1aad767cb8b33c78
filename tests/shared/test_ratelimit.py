"""Per-subject rate limits (shared/ratelimit.py) on a single Redis and, with ``--topology=cluster``, a Redis Cluster.

Budgets taken with an authentication (``AccountStore.admit``) are tested in test_admission.py."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from shared.errors import RateLimited
from shared.ratelimit import SUBJECTS, RateLimit
from shared.redis_conn import RedisClient, redis_client
from shared.scripts import ScriptRunner

pytestmark = pytest.mark.cluster


async def _client(redis_url: str) -> RedisClient:
    client = redis_client(redis_url, mode=os.environ.get("REDIS_MODE", "standalone"))
    await client.ping()  # a cluster client loads its slot map before concurrent use
    return client


def down_for(subject: str, script: Any) -> Any:
    """``script``, failing as a lost connection in ``subject``'s slot."""

    async def call(base: str, *args: object) -> object:
        if base == SUBJECTS.base(subject):
            raise ConnectionError(f"the node of {subject} is down")
        return await script(base, *args)

    return call


async def test_limit_holds_across_two_clients_of_the_same_redis(redis_url: str) -> None:
    first, second = await _client(redis_url), await _client(redis_url)
    limit_a = RateLimit(first, "t", limit=3, window_s=60)
    limit_b = RateLimit(second, "t", limit=3, window_s=60)
    assert [await limit_a.hit("ip"), await limit_b.hit("ip"), await limit_a.hit("ip")] == [1, 2, 3]
    with pytest.raises(RateLimited) as exc_info:
        await limit_b.hit("ip")
    assert 1 <= exc_info.value.retry_after <= 60
    assert await limit_a.hit("other") == 1
    await first.aclose()
    await second.aclose()


async def test_parallel_hits_from_four_clients_take_exactly_the_budget(redis_url: str) -> None:
    clients = [await _client(redis_url) for _ in range(4)]
    limits = [RateLimit(ScriptRunner(client, max_batch=8), "t", limit=10, window_s=60) for client in clients]
    results = await asyncio.gather(*(limits[i % 4].hit("k") for i in range(200)), return_exceptions=True)
    assert sorted(r for r in results if isinstance(r, int)) == list(range(1, 11))
    assert sum(isinstance(r, RateLimited) for r in results) == 190
    assert await limits[0].count("k") == 10  # refused hits take nothing
    assert 0 < await clients[0].pttl("rl:{k}:t") <= 60_000
    for client in clients:
        await client.aclose()


async def test_concurrent_hits_of_one_subject_are_granted_together_in_arrival_order(redis: RedisClient) -> None:
    limit = RateLimit(redis, "t", limit=60, window_s=60)
    calls = 0
    grant = limit._grant_script

    async def counted(*args: object) -> object:
        nonlocal calls
        calls += 1
        return await grant(*args)  # type: ignore[arg-type]

    limit._grant_script = counted  # type: ignore[method-assign,assignment]
    results = await asyncio.gather(*(limit.hit("ip") for _ in range(100)), limit.hit("other"), return_exceptions=True)
    assert results[:60] == list(range(1, 61))  # the first 60 to arrive, with consecutive counts
    assert all(isinstance(r, RateLimited) and 1 <= r.retry_after <= 60 for r in results[60:100])
    assert results[100] == 1
    assert calls <= 4  # 101 hits, a handful of script calls: one per subject and round trip
    assert await limit.count("ip") == 60


async def test_redis_errors_reach_every_caller() -> None:
    broken = redis_client("redis://127.0.0.1:1/0")
    limit = RateLimit(broken, "t", limit=5, window_s=60)
    results = await asyncio.gather(limit.hit("a"), limit.hit("b"), return_exceptions=True)
    assert all(isinstance(r, Exception) and not isinstance(r, RateLimited) for r in results)
    await broken.aclose()


async def test_a_redis_error_for_one_subject_fails_only_that_subjects_hits(redis: RedisClient) -> None:
    limit = RateLimit(redis, "t", limit=5, window_s=60)
    limit._grant_script = down_for("b", limit._grant_script)  # type: ignore[method-assign]
    results = await asyncio.gather(limit.hit("a"), limit.hit("b"), limit.hit("a"), return_exceptions=True)
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ConnectionError)

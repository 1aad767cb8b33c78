from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from shared.errors import RateLimited
from shared.ratelimit import RateLimit, reserve


async def test_limit_holds_across_two_clients_of_the_same_redis(redis_url: str) -> None:
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    limit_a = RateLimit(first, "t", limit=3, window_s=60)
    limit_b = RateLimit(second, "t", limit=3, window_s=60)
    assert [await limit_a.hit("ip"), await limit_b.hit("ip"), await limit_a.hit("ip")] == [1, 2, 3]
    with pytest.raises(RateLimited) as exc_info:
        await limit_b.hit("ip")
    assert 1 <= exc_info.value.retry_after <= 60
    assert await limit_a.hit("other") == 1
    await first.aclose()
    await second.aclose()


async def test_parallel_hits_take_exactly_the_budget(redis_url: str) -> None:
    # A pool that waits for a free connection, so 200 calls are really in flight together.
    redis = Redis.from_pool(BlockingConnectionPool.from_url(redis_url, max_connections=200))
    limit = RateLimit(redis, "t", limit=10, window_s=60)
    results = await asyncio.gather(*(limit.hit("k") for _ in range(200)), return_exceptions=True)
    assert sorted(r for r in results if isinstance(r, int)) == list(range(1, 11))
    assert sum(isinstance(r, RateLimited) for r in results) == 190
    assert await limit.count("k") == 10  # refused hits take nothing
    assert 0 < await redis.pttl("rl:t:k") <= 60_000
    await redis.aclose()


async def test_a_full_budget_takes_nothing_from_the_others(redis: Redis) -> None:
    per_key = RateLimit(redis, "key", limit=5, window_s=60)
    per_ip = RateLimit(redis, "ip", limit=1, window_s=30)
    await reserve(per_key.slot("a"), per_ip.slot("1.2.3.4"))
    with pytest.raises(RateLimited) as exc_info:
        await reserve(per_key.slot("a"), per_ip.slot("1.2.3.4"))
    assert 1 <= exc_info.value.retry_after <= 30
    assert (await per_key.count("a"), await per_ip.count("1.2.3.4")) == (1, 1)


async def test_release_gives_slots_back_and_never_below_zero(redis: Redis) -> None:
    per_key = RateLimit(redis, "key", limit=1, window_s=60)
    per_ip = RateLimit(redis, "ip", limit=1, window_s=60)
    reservation = await reserve(per_key.slot("a"), per_ip.slot("ip"))
    assert reservation.counts == (1, 1)
    await reservation.release(per_ip)
    assert (await per_key.count("a"), await per_ip.count("ip")) == (1, 0)
    await reservation.release()
    await reservation.release()
    assert (await per_key.count("a"), await per_ip.count("ip")) == (0, 0)
    await per_key.reset("a")
    await reservation.release()  # the window is gone: nothing to give back, nothing created
    assert await redis.exists("rl:key:a") == 0

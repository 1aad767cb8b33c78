"""The token service's limits: the batched customer-token budget and the guessing odds."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from shared.errors import RateLimited
from shared.ratelimit import RateLimit
from token_service.limits import BatchedRateLimit, guess_probability


async def test_concurrent_hits_get_consecutive_counts_and_the_excess_takes_nothing(redis: Redis) -> None:
    limit = BatchedRateLimit(redis, "t", limit=5, window_s=60)
    results = await asyncio.gather(*(limit.hit("ip-a") for _ in range(8)), limit.hit("ip-b"), return_exceptions=True)
    assert results[:5] == [1, 2, 3, 4, 5]
    assert all(isinstance(r, RateLimited) and 1 <= r.retry_after <= 60 for r in results[5:8])
    assert results[8] == 1
    assert await redis.get("rl:t:ip-a") == "5"
    assert 0 < await redis.pttl("rl:t:ip-a") <= 60_000


async def test_shares_keys_and_window_with_the_plain_limit(redis: Redis) -> None:
    plain = RateLimit(redis, "t", limit=2, window_s=60)
    batched = BatchedRateLimit(redis, "t", limit=2, window_s=60)
    await plain.hit("ip")
    assert await batched.hit("ip") == 2
    with pytest.raises(RateLimited):
        await plain.hit("ip")
    with pytest.raises(RateLimited):
        await batched.hit("ip")


async def test_redis_errors_reach_every_waiter() -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0")
    limit = BatchedRateLimit(broken, "t", limit=5, window_s=60)
    results = await asyncio.gather(limit.hit("a"), limit.hit("b"), return_exceptions=True)
    assert all(isinstance(r, Exception) and not isinstance(r, RateLimited) for r in results)
    await broken.aclose()


def test_documented_caps_give_about_one_percent_an_hour() -> None:
    """10 keys behind one IP, 10 per key and 30 per IP per 15 minutes: 120 guesses an hour, 100 live PINs."""
    chance = guess_probability(per_key=10, per_ip=30, window_s=900)
    assert 0.0118 < chance < 0.0121


def test_guess_probability_grows_with_the_budget_and_saturates() -> None:
    low = guess_probability(per_key=1, per_ip=30, window_s=900)
    assert guess_probability(per_key=59, per_ip=60, window_s=900) > low > 0
    assert guess_probability(per_key=10**6, per_ip=10**6, window_s=60) == 1.0
    assert guess_probability(per_key=0, per_ip=30, window_s=900) == 0.0

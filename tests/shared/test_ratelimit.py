from __future__ import annotations

import pytest
from redis.asyncio import Redis

from shared.errors import RateLimited
from shared.ratelimit import RateLimit


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


async def test_check_counts_nothing(redis: Redis) -> None:
    limit = RateLimit(redis, "t", limit=1, window_s=60)
    await limit.check("k")
    await limit.check("k")
    await limit.hit("k")
    with pytest.raises(RateLimited):
        await limit.check("k")
    assert await redis.pttl("rl:t:k") > 0

"""Rate-limit reservations (shared/ratelimit.py) on a single Redis and, with ``--topology=cluster``, a Redis Cluster."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from redis.crc import key_slot

from shared.errors import RateLimited
from shared.ratelimit import SUBJECTS, RateLimit, reserve
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


async def test_budgets_of_one_subject_share_a_slot_and_are_taken_all_or_none(redis: RedisClient) -> None:
    per_key = RateLimit(redis, "key", limit=5, window_s=60)
    tries = RateLimit(redis, "tries", limit=1, window_s=30)
    assert key_slot(per_key.key("a").encode()) == key_slot(tries.key("a").encode())
    assert (await reserve(per_key.slot("a"), tries.slot("a"))).counts == (1, 1)
    with pytest.raises(RateLimited) as exc_info:
        await reserve(per_key.slot("a"), tries.slot("a"))
    assert 1 <= exc_info.value.retry_after <= 30
    assert (await per_key.count("a"), await tries.count("a")) == (1, 1)


async def test_a_full_budget_of_one_subject_gives_the_others_slots_back(redis: RedisClient) -> None:
    per_key = RateLimit(redis, "key", limit=5, window_s=60)
    per_ip = RateLimit(redis, "ip", limit=1, window_s=30)
    assert (await reserve(per_key.slot("a"), per_ip.slot("1.2.3.4"))).counts == (1, 1)
    with pytest.raises(RateLimited) as exc_info:
        await reserve(per_key.slot("b"), per_ip.slot("1.2.3.4"))
    assert 1 <= exc_info.value.retry_after <= 30
    assert (await per_key.count("a"), await per_key.count("b"), await per_ip.count("1.2.3.4")) == (1, 0, 1)


async def test_the_subjects_of_a_reservation_share_one_round_trip_and_an_error_gives_the_others_back(
    redis: RedisClient,
) -> None:
    runner = ScriptRunner(redis)
    per_key = RateLimit(runner, "key", limit=5, window_s=60)
    per_ip = RateLimit(runner, "ip", limit=5, window_s=60)
    trips = 0
    execute = runner._execute

    async def counted(batch: list) -> list:  # type: ignore[type-arg]
        nonlocal trips
        trips += 1
        return await execute(batch)

    runner._batcher._send = counted  # type: ignore[assignment]
    assert (await reserve(per_key.slot("a"), per_ip.slot("1.2.3.4"))).counts == (1, 1)
    assert trips == 1  # both subjects at once, not one after the other
    per_ip.reserve_script = down_for("1.2.3.4", per_ip.reserve_script)  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await reserve(per_key.slot("b"), per_ip.slot("1.2.3.4"))
    assert await per_key.count("b") == 0


async def test_concurrent_reservations_across_subjects_never_pass_a_budget(redis: RedisClient) -> None:
    """10 keys behind one IP, 20 tries each: the IP's 30 bound what gets through, each key's 10 bound its share."""
    runner = ScriptRunner(redis)  # one per client, as in a service: a cluster pool refuses past its size, not waits
    per_key = RateLimit(runner, "key", limit=10, window_s=60)
    per_ip = RateLimit(runner, "ip", limit=30, window_s=60)
    results = await asyncio.gather(
        *(reserve(per_key.slot(f"k{i % 10}"), per_ip.slot("ip")) for i in range(200)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 170 and all(isinstance(r, RateLimited) for r in refused)
    assert await per_ip.count("ip") == 30
    assert sum([await per_key.count(f"k{i}") for i in range(10)]) == 30  # the refused gave theirs back


async def test_release_gives_slots_back_and_never_below_zero(redis: RedisClient) -> None:
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
    assert await redis.exists("rl:{a}:key") == 0


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

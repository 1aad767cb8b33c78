"""Round trips under a burst: concurrent requests share them, to Redis (``shared.scripts.ScriptRunner``) and to the
registry over NATS (``shared.rpc_many.ManyCaller``).

Standalone only: on a cluster the calls of a round trip go out concurrently, each on a connection of its own.

A customer start needs one rate-limit reservation; an agent connect an authentication, a reservation and (for a
live PIN) a release. Sent one by one, a burst of 100 requests would hold up to 100 Redis connections at once;
shared, a handful. Counting the service's connections is how the test sees round trips being shared; the stand-in
registry counts the calls in each NATS request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from shared.accounts import AccountStore, Role

from .conftest import FakeRegistry, MakeClient


async def _service_connections(redis: Redis) -> int:
    return len(await redis.client_list()) - 1  # every client but the test's own


async def test_a_burst_of_starts_and_connects_shares_redis_round_trips(
    make_client: MakeClient, registry: FakeRegistry, accounts: AccountStore, redis: Redis
) -> None:
    client = await make_client(starts_per_window=1000, pin_failures_per_agent=1000, pin_failures_per_ip=1000)
    registry.add_session("123456")
    _, key = await accounts.create("Ann", Role.AGENT)
    headers = {"Authorization": f"Bearer {key}"}

    async def start() -> int:
        return int((await client.post("/api/customer/start", json={})).status)

    async def connect() -> int:
        return int((await client.post("/api/agent/connect", json={"pin": "123456"}, headers=headers)).status)

    statuses: list[Any] = await asyncio.gather(*(start() for _ in range(50)), *(connect() for _ in range(50)))
    assert statuses == [200] * 100
    assert await _service_connections(redis) <= 8
    for name in ("create", "resolve"):  # and NATS requests to the registry
        assert sum(registry.batches[name]) == 50 and len(registry.batches[name]) < 50


async def test_concurrent_starts_share_registry_requests_and_a_refused_one_fails_alone(
    make_client: MakeClient, registry: FakeRegistry
) -> None:
    client = await make_client(starts_per_window=1000, allow_byop=True)
    registry.taken_pins.add("TAKEN1")

    async def start(body: dict[str, str]) -> int:
        return int((await client.post("/api/customer/start", json=body)).status)

    statuses = await asyncio.gather(*(start({}) for _ in range(50)), start({"customPin": "TAKEN1"}))
    assert statuses == [200] * 50 + [409]
    assert sum(registry.batches["create"]) == 51 and len(registry.batches["create"]) < 51
    assert len({c.customer_id for c in registry.created}) == 50

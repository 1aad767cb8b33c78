"""PIN guessing under a burst: every lookup takes its slot before it reaches the registry (real Redis and NATS).

The stand-in registry on the test NATS records every ``registry.pins.resolve`` it answers, so the tests count the
lookups that got through, not the answers the clients saw.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from shared.accounts import AccountStore, Role
from token_service.limits import guess_probability

from .conftest import FakeRegistry, MakeClient

pytestmark = pytest.mark.cluster


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _guess(client: Any, key: str, pin: str) -> int:
    response = await client.post("/api/agent/connect", json={"pin": pin}, headers=_auth(key))
    if response.status == 429:
        assert int(response.headers["Retry-After"]) >= 1
    return int(response.status)


async def test_200_parallel_wrong_guesses_reach_the_registry_at_most_10_times(
    make_client: MakeClient, registry: FakeRegistry, accounts: AccountStore
) -> None:
    client = await make_client(pin_failures_per_agent=10, agent_tokens_per_window=1000)
    _, key = await accounts.create("Guesser", Role.AGENT)
    statuses = await asyncio.gather(*(_guess(client, key, f"{i:06d}") for i in range(200)))
    assert len(registry.resolved) == 10
    assert Counter(statuses) == {404: 10, 429: 190}


async def test_10_keys_behind_one_ip_reach_the_registry_at_most_30_times(
    make_client: MakeClient, registry: FakeRegistry, accounts: AccountStore
) -> None:
    client = await make_client(pin_failures_per_agent=10, pin_failures_per_ip=30, agent_tokens_per_window=1000)
    keys = [(await accounts.create(f"Guesser {i}", Role.AGENT))[1] for i in range(10)]
    statuses = await asyncio.gather(*(_guess(client, keys[i % 10], f"{i:06d}") for i in range(200)))
    per_key = Counter(r.agent_id for r in registry.resolved)
    assert len(registry.resolved) == 30
    assert max(per_key.values()) <= 10
    assert Counter(statuses) == {404: 30, 429: 170}
    # The odds these measured budgets give an attacker with 10 keys against 100 live PINs for an hour.
    measured = guess_probability(per_key=max(per_key.values()), per_ip=len(registry.resolved), window_s=900)
    assert measured <= guess_probability(per_key=10, per_ip=30, window_s=900) < 0.013


async def test_live_pins_in_a_burst_hand_every_slot_back(
    make_client: MakeClient, registry: FakeRegistry, accounts: AccountStore
) -> None:
    """A lookup holds its slot only while it is in flight: a burst of live PINs leaves the whole budget."""
    client = await make_client(pin_failures_per_agent=5, agent_tokens_per_window=1000)
    registry.add_session("999999")
    _, key = await accounts.create("Busy agent", Role.AGENT)
    statuses = await asyncio.gather(*(_guess(client, key, "999999") for _ in range(50)))
    assert statuses.count(200) >= 5 and set(statuses) <= {200, 429}
    assert [await _guess(client, key, f"{i:06d}") for i in range(6)] == [404] * 5 + [429]

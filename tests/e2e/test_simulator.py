"""The simulator (``make demo``) against the real services: its customers are served by its agents."""

from __future__ import annotations

import pytest

from devstack.simulator import SimConfig, Simulator
from devstack.stack import Stack
from shared.accounts import Role

pytestmark = pytest.mark.timeout(60)


async def test_simulated_customers_are_claimed_served_and_ended_by_simulated_agents(stack: Stack) -> None:
    config = SimConfig(
        token_url=stack.urls["token"],
        agent_keys=(await stack.create_account("Sim", Role.AGENT),),
        queues=("simulated",),
        customers_per_minute=600.0,
        max_customers=3,
        handle_s=(0.1, 0.3),
        think_s=(0.0, 0.1),
        abandon_ratio=0.0,
        decline_ratio=0.0,
        poll_s=0.2,
        seed=7,
    )
    stats = await Simulator(config).run()

    assert stats.counts["started"] == 3
    assert stats.counts["claimed"] == 3
    assert stats.counts["ended"] == 3
    assert stats.counts["failed"] == 0
    assert len(stats.waits) == 3

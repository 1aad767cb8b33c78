"""Two replicas of the token service against one Redis and one NATS behave as one service."""

from __future__ import annotations

import asyncio

import nats
import pytest

from shared.accounts import AccountStore, Role
from shared.messaging import TOKEN_AGENT_ISSUE, AgentToken, IssueAgentToken
from shared.rpc import call

from .conftest import FakeRegistry, MakeClient

pytestmark = pytest.mark.cluster


async def test_customer_limit_holds_across_replicas(make_client: MakeClient) -> None:
    first, second = await make_client(customer_tokens_per_window=3), await make_client(customer_tokens_per_window=3)
    answers = await asyncio.gather(*(client.post("/", json={"role": 1}) for client in (first, second) * 3))
    assert sorted(response.status for response in answers) == [200, 200, 200, 429, 429, 429]


async def test_each_rpc_is_answered_by_one_replica(
    make_client: MakeClient, registry: FakeRegistry, accounts: AccountStore, nc: nats.aio.client.Client
) -> None:
    await make_client()
    await make_client()
    account, _ = await accounts.create("Ann", Role.AGENT)
    registry.add_session("123456")
    replies = await asyncio.gather(
        *(
            call(nc, TOKEN_AGENT_ISSUE, IssueAgentToken(account_id=account.id, pin="123456"), AgentToken)
            for _ in range(6)
        )
    )
    assert len(replies) == 6
    assert len(registry.resolved) == 6  # one registry lookup per request: no replica answered twice

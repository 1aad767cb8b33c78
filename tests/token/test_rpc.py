"""``token.agent.issue``: the notification service asks for an agent's token when the agent claims a request."""

from __future__ import annotations

from typing import Any

import nats
import pytest

from shared.accounts import AccountStore, Role
from shared.errors import RemoteError
from shared.messaging import TOKEN_AGENT_ISSUE, AgentToken, IssueAgentToken
from shared.rpc import call

from .conftest import FakeRegistry, MakeClient, decode

pytestmark = pytest.mark.cluster


async def test_issues_a_token_for_an_enabled_account_and_a_live_pin(
    client: Any, registry: FakeRegistry, accounts: AccountStore, nc: nats.aio.client.Client
) -> None:
    account, _ = await accounts.create("Sue", Role.SUPERVISOR)
    registry.add_session("123456", session_id="s-7")
    issued = await call(nc, TOKEN_AGENT_ISSUE, IssueAgentToken(account_id=account.id, pin="123456"), AgentToken)
    assert (issued.session_id, issued.pin) == ("s-7", "123456")
    claims = decode(issued.token)
    assert (claims["role_type"], claims["user_id"], claims["user_name"]) == (2, account.id, "Sue")
    assert claims["exp"] - claims["iat"] == 1800  # TOKEN_AGENT_EXPIRY_S
    assert issued.desk_url.startswith("https://us01-zcb.zoom.us/sdkapi/zcb/frame-templates/desk?access_token=")


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [("unknown", 404, "account_not_found"), ("disabled", 403, "account_disabled"), ("pin", 404, "pin_not_found")],
)
async def test_refusals_keep_their_status_and_code(
    client: Any,
    registry: FakeRegistry,
    accounts: AccountStore,
    nc: nats.aio.client.Client,
    case: str,
    status: int,
    code: str,
) -> None:
    account, _ = await accounts.create("Ann", Role.AGENT)
    registry.add_session("123456")
    if case == "disabled":
        await accounts.set_disabled(account.id, True)
    request = IssueAgentToken(
        account_id="nobody" if case == "unknown" else account.id, pin="000000" if case == "pin" else "123456"
    )
    with pytest.raises(RemoteError) as exc_info:
        await call(nc, TOKEN_AGENT_ISSUE, request, AgentToken)
    assert (exc_info.value.status, exc_info.value.code) == (status, code)


async def test_guesses_through_a_claim_and_through_connect_share_the_accounts_budget(
    make_client: MakeClient, registry: FakeRegistry, accounts: AccountStore, nc: nats.aio.client.Client
) -> None:
    client = await make_client(pin_failures_per_agent=2)
    registry.add_session("123456")
    account, key = await accounts.create("Ann", Role.AGENT)

    async def issue(pin: str) -> AgentToken:
        return await call(nc, TOKEN_AGENT_ISSUE, IssueAgentToken(account_id=account.id, pin=pin), AgentToken)

    for _ in range(3):
        await issue("123456")  # a live PIN gives its guess back
    for _ in range(2):
        with pytest.raises(RemoteError) as missed:
            await issue("000000")
        assert missed.value.code == "pin_not_found"
    with pytest.raises(RemoteError) as refused:
        await issue("123456")  # both guesses spent: refused before the registry is asked
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    connect = await client.post(
        "/api/agent/connect", json={"pin": "123456"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert connect.status == 429


async def test_malformed_request_is_a_validation_error(client: Any, nc: nats.aio.client.Client) -> None:
    reply = await nc.request(TOKEN_AGENT_ISSUE, b'{"pin": 5}', timeout=1)
    assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "400"

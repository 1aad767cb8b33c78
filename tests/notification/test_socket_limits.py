"""Caps on sockets and streams (issue 8): past a cap 429 (credential, account) or 503 (process) with
``Retry-After``, before the upgrade; a socket that authenticates with its first frame gets ``rate_limited`` + 4429."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from notification_service.keys import CONNECTIONS
from shared.accounts import Role
from shared.messaging import SessionState

from .conftest import new_session_id, session_token
from .test_dashboard import SSE
from .test_hostile import error_then_close


async def _refused(answer, status: int) -> None:
    assert answer.status == status
    assert int(answer.headers["Retry-After"]) >= 1
    body = await answer.json()
    assert body["error"]["code"] == ("rate_limited" if status == 429 else "unavailable")


async def test_sse_streams_per_credential_are_capped_before_the_stream_starts(replica, account):
    client = await replica(max_streams_per_credential=3, max_dashboard_streams_per_account=50)
    _, key = await account("sup", role=Role.SUPERVISOR)
    headers = {"Authorization": f"Bearer {key}"}
    streams = [SSE(await client.get("/events", headers=headers)) for _ in range(3)]
    for stream in streams:
        assert (await stream.next())[1]["type"] == "snapshot"
    await _refused(await client.get("/events", headers=headers), 429)
    _, other_key = await account("sup2", role=Role.SUPERVISOR)  # another credential is not affected
    other = SSE(await client.get("/events", headers={"Authorization": f"Bearer {other_key}"}))
    assert (await other.next())[1]["type"] == "snapshot"


async def test_customer_streams_per_session_token_are_capped(replica, session, events):
    client = await replica(max_streams_per_credential=3)
    sid = new_session_id()
    await session(sid, SessionState.WAITING, SessionState.CREATED)
    headers = {"X-Session-Token": session_token(sid)}
    path = f"/api/requests/{sid}/events"
    await events.expect("queued", session_id=sid)
    streams = [SSE(await client.get(path, headers=headers)) for _ in range(3)]
    for stream in streams:
        assert (await stream.next())[1]["state"] == "queued"
    await _refused(await client.get(path, headers=headers), 429)
    # A burst on one token: every answer is the cap's 429, none holds a stream.
    answers = await asyncio.gather(*(client.get(path, headers=headers) for _ in range(200)))
    assert {a.status for a in answers} == {429}
    bad = await client.get(path, headers={"X-Session-Token": "v1.garbage"})
    assert bad.status in (401, 403)  # a bad token is refused at once
    assert len(client.server.app[CONNECTIONS].open) == 3  # refused tries hold no slot


async def test_process_cap_answers_503_before_the_upgrade(replica, agent, account):
    client = await replica(max_connections=2)
    await agent(client, "alice")
    await agent(client, "bob")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/agent")
    assert refused.value.status == 503 and int(refused.value.headers["Retry-After"]) >= 1
    _, key = await account("sup", role=Role.SUPERVISOR)
    for path in ("/events", "/ws/dashboard"):
        await _refused(await client.get(path, headers={"Authorization": f"Bearer {key}"}), 503)


async def test_agent_sockets_per_account_are_capped(replica, agent, account):
    client = await replica(max_agent_sockets_per_account=1)
    agent_id, key = await account("alice")
    first = await agent(client, api_key=key)
    second = await client.ws_connect("/ws/agent")
    await second.send_json({"type": "auth", "api_key": key})
    error, code = await error_then_close(second)
    assert error["code"] == "rate_limited" and code == 4429
    await first.sync()  # the live console is untouched


async def test_dashboard_sockets_per_account_are_capped_before_or_after_the_upgrade(replica, account):
    client = await replica(max_dashboard_streams_per_account=1)
    _, key = await account("sup", role=Role.SUPERVISOR)
    headers = {"Authorization": f"Bearer {key}"}
    live = await client.ws_connect("/ws/dashboard", headers=headers)
    assert (await live.receive_json())["type"] == "snapshot"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/dashboard", headers=headers)
    assert refused.value.status == 429
    by_frame = await client.ws_connect("/ws/dashboard")
    await by_frame.send_json({"type": "auth", "api_key": key})
    error, code = await error_then_close(by_frame)
    assert error["code"] == "rate_limited" and code == 4429

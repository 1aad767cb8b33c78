"""Hostile input and outages on the sockets and streams (issue 8): our error, never a 500 or a crash."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import WSMsgType
from hypothesis import given
from hypothesis import strategies as st

from devstack.servers import start_redis
from notification_service.dashboard import parse_last_id
from shared.accounts import Role
from shared.errors import ValidationFailed

from .conftest import FRAME_TIMEOUT_S

DEEP = "[" * 30_000 + "]" * 30_000  # fits one frame; made the C parser raise RecursionError
NESTED = '{"type": "auth", "api_key": ' + "[" * 40 + "]" * 40 + "}"  # valid JSON, deeper than the limit


async def error_then_close(ws) -> tuple[dict, int | None]:
    async with asyncio.timeout(FRAME_TIMEOUT_S):
        error = await ws.receive_json()
        closing = await ws.receive()
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), closing
    return error, ws.close_code


NON_FINITE = ['{"type": "auth", "api_key": 1e400}', '{"type": "auth", "api_key": NaN}']


@pytest.mark.parametrize("path", ["/ws/agent", "/ws/dashboard"])
@pytest.mark.parametrize("frame", [DEEP, NESTED, *NON_FINITE])
async def test_hostile_first_frame_gets_error_frame_and_close(replica, agent, path, frame):
    client = await replica()
    ws = await client.ws_connect(path)
    await ws.send_str(frame)
    error, code = await error_then_close(ws)
    assert error["type"] == "error" and error["code"] in ("malformed_json", "json_too_deep"), error
    assert code == 4401
    await agent(client, "alice")  # the service is still up


async def test_hostile_frame_after_auth_is_refused_and_socket_stays(replica, agent):
    alice = await agent(await replica(), "alice")
    for frame in (DEEP, NESTED, '{"type": "ping", "x": -Infinity}'):
        await alice.ws.send_str(frame)
        assert (await alice.expect("error"))["code"] in ("malformed_json", "json_too_deep", "validation_failed")
    await alice.sync()


@given(st.text(max_size=40))
def test_last_event_id_is_a_number_or_a_400_naming_the_header(value):
    try:
        parsed = parse_last_id(value)
    except ValidationFailed as exc:
        assert exc.errors[0]["property"] == "Last-Event-ID"
    else:
        assert parsed is None or (value.isascii() and parsed == int(value))


@pytest.mark.parametrize("value", ["²", "1²", "١٢", "-1", "1e3", " 5", "0x10", "99999999999999999999", "1000000"])
async def test_bad_or_past_end_last_event_id_is_refused_with_400(replica, account, value):
    client = await replica()
    _, key = await account("sup", role=Role.SUPERVISOR)
    headers = {"Authorization": f"Bearer {key}"}
    for path in ("/events", "/ws/dashboard"):
        answer = await client.get(path, headers=headers, params={"last_event_id": value})
        assert answer.status == 400, (path, value)
        body = await answer.json()
        assert body["error"]["code"] == "validation_failed"
        assert body["errors"][0]["property"] == "Last-Event-ID"
    if value.isascii() or value == "²":  # a header carries latin-1 only
        answer = await client.get("/events", headers={**headers, "Last-Event-ID": value})
        assert answer.status == 400


async def test_redis_outage_on_upgraded_agent_socket_is_an_error_frame_not_a_500(replica, account, tmp_path):
    redis_server = start_redis(tmp_path / "redis")
    try:
        client = await replica(redis_url=redis_server.url)
        ws = await client.ws_connect("/ws/agent")
        redis_server.stop()
        await ws.send_json({"type": "auth", "api_key": "cbk_" + "x" * 43})
        error, code = await error_then_close(ws)
        assert error == {"type": "error", "code": "unavailable", "message": error["message"]}
        assert code == 1013
    finally:
        redis_server.stop()

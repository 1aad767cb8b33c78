"""Bad input on the agent socket is answered with error frames; the socket and the service stay up."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notification_service.frames import parse
from shared.accounts import Role
from shared.errors import BadRequest
from shared.messaging import SessionState

from .conftest import new_session_id


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "malformed_json"),
        ("[1, 2]", "validation_failed"),
        ('{"type": "dance"}', "validation_failed"),
        ('{"type": "status", "status": "asleep"}', "validation_failed"),
        ('{"type": "status", "status": "available", "queues": ["a.b"]}', "validation_failed"),
        ('{"type": "claim"}', "validation_failed"),
        ('{"type": "claim", "session_id": "nope"}', "request_not_found"),
        ('{"type": "auth", "api_key": "cbk_again"}', "already_authenticated"),
    ],
)
async def test_malformed_agent_frame_gets_error_frame_and_socket_survives(replica, agent, session, frame, code):
    client = await replica()
    alice = await agent(client, "alice")
    await alice.ws.send_str(frame)
    error = await alice.expect("error")
    assert error["code"] == code
    assert error["message"]

    await alice.available()  # the same socket still works
    sid = new_session_id()
    await session(sid, SessionState.WAITING, SessionState.CREATED)
    await alice.expect("offer", session_id=sid)


async def test_binary_frame_is_refused_with_error_frame(replica, agent):
    alice = await agent(await replica(), "alice")
    await alice.ws.send_bytes(b"\x00\x01")
    assert (await alice.expect("error"))["code"] == "text_frames_only"
    await alice.sync()


async def test_bad_api_key_gets_error_and_close(replica):
    client = await replica()
    ws = await client.ws_connect("/ws/agent")
    await ws.send_json({"type": "auth", "api_key": "cbk_unknown"})
    error = await ws.receive_json()
    assert error["type"] == "error" and error["code"] == "invalid_api_key"
    closing = await ws.receive()
    assert ws.close_code == 4401, closing


async def test_first_frame_must_authenticate(replica):
    client = await replica()
    ws = await client.ws_connect("/ws/agent")
    await ws.send_json({"type": "ping"})
    error = await ws.receive_json()
    assert error["code"] == "validation_failed"
    await ws.receive()
    assert ws.close_code == 4401


async def test_supervisor_key_cannot_open_agent_console(replica, account):
    client = await replica()
    _, key = await account("sup", role=Role.SUPERVISOR)
    ws = await client.ws_connect("/ws/agent")
    await ws.send_json({"type": "auth", "api_key": key})
    assert (await ws.receive_json())["code"] == "role_required"


async def test_pages_are_served(replica):
    client = await replica()
    for path in ("/agent", "/dashboard"):
        response = await client.get(path)
        assert response.status == 200 and response.content_type == "text/html"
    assert (await client.get("/static/agent.js")).status == 200
    assert (await client.get("/static/nothing.js")).status == 404


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)
_FRAME_TYPES = st.sampled_from(["auth", "status", "claim", "decline", "release", "ping", "dance"])


@given(
    st.one_of(
        st.text(max_size=200),
        _JSON.map(json.dumps),
        st.builds(lambda t, body: json.dumps({"type": t, **body}), _FRAME_TYPES, st.dictionaries(st.text(), _JSON)),
    )
)
def test_any_frame_parses_or_is_refused_with_our_error(raw):
    for auth_only in (False, True):
        try:
            parse(raw, auth_only=auth_only)
        except BadRequest as exc:  # ValidationFailed included: never another exception type
            assert exc.code in ("malformed_json", "json_too_deep", "validation_failed")

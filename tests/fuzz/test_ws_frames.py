"""Generated frames on both WebSockets of the notification service, before and after authentication.

Frames are every client frame type (``auth``, ``status``, ``claim``, ``decline``, ``release``, ``ping``) with
fuzzed fields (real keys and the live session's id among them), arbitrary JSON documents (NaN and Infinity too),
non-JSON text and binary messages. The properties:

- before auth the socket answers the first frame with ``ready``/``snapshot`` (a good credential) or an ``error``
  frame and close code 4401; never an internal error or an abnormal close;
- after auth every frame gets its answer or an ``error`` frame naming the problem, the socket stays open
  (a ``ping`` after the fuzzed frames is answered), and no ``error`` is the catch-all ``internal``;
- no log line carries a traceback.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import ClientSession, ClientWebSocketResponse, WSMessage, WSMsgType
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.stack import FUZZ, JSON, Stack

FRAME_TIMEOUT_S = 5.0
CLOSE_UNAUTHORIZED = 4401

Message = tuple[str, Any]
"""``("text", str)`` or ``("binary", bytes)``."""


def _frames(stack: Stack) -> st.SearchStrategy[Message]:
    """Every client frame type with good and bad fields, and messages that are no frame at all."""
    key = st.sampled_from(sorted(stack.keys.values())) | JSON
    session_id = st.sampled_from([stack.session_id, "s1"]) | st.text(max_size=140) | JSON
    queue = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z") | st.text(max_size=70) | JSON

    def frame(
        type_: str | st.SearchStrategy[Any], **fields: st.SearchStrategy[Any]
    ) -> st.SearchStrategy[dict[str, Any]]:
        types = type_ if isinstance(type_, st.SearchStrategy) else st.just(type_)
        return st.fixed_dictionaries({"type": types}, optional={**fields, "extra": JSON})

    frames = st.one_of(
        frame("auth", api_key=key, ticket=JSON),
        frame(
            "status",
            status=st.sampled_from(["available", "away"]) | JSON,
            queues=st.lists(queue, max_size=55) | JSON,
            capacity=st.integers(min_value=-2, max_value=60) | JSON,
        ),
        frame("claim", session_id=session_id),
        frame("decline", session_id=session_id),
        frame("release", session_id=session_id),
        frame("ping"),
        frame(st.text(max_size=12) | JSON),
    )
    return st.one_of(
        frames.map(lambda f: ("text", json.dumps(f))),
        JSON.map(lambda v: ("text", json.dumps(v))),
        st.text(max_size=200).map(lambda t: ("text", t)),
        st.binary(max_size=64).map(lambda b: ("binary", b)),
    )


async def _send(ws: ClientWebSocketResponse, message: Message) -> None:
    kind, data = message
    if kind == "text":
        await ws.send_str(data)
    else:
        await ws.send_bytes(data)


async def _receive(ws: ClientWebSocketResponse) -> WSMessage:
    return await ws.receive(timeout=FRAME_TIMEOUT_S)


def _frame(msg: WSMessage) -> dict[str, Any]:
    assert msg.type == WSMsgType.TEXT, f"expected a text frame, got {msg.type} {msg.data!r}"
    frame = json.loads(msg.data)
    assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
    assert not (frame["type"] == "error" and frame.get("code") == "internal"), frame
    return frame


async def _first_frame_answer(ws: ClientWebSocketResponse, message: Message, welcome: str) -> None:
    """Before auth: a good credential is welcomed; anything else gets an error frame, then close 4401."""
    await _send(ws, message)
    first = _frame(await _receive(ws))
    if first["type"] == welcome:
        return
    assert first["type"] == "error", first
    closing = await _receive(ws)
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), closing
    assert ws.close_code == CLOSE_UNAUTHORIZED, (ws.close_code, first)


@pytest.mark.parametrize(("path", "welcome"), [("/ws/agent", "ready"), ("/ws/dashboard", "snapshot")])
def test_socket_answers_any_first_frame(stack: Stack, http: ClientSession, path: str, welcome: str) -> None:
    url = stack.ws_url("notification", path)

    @FUZZ
    @given(message=_frames(stack))
    def answered(message: Message) -> None:
        async def exchange() -> None:
            async with http.ws_connect(url) as ws:
                await _first_frame_answer(ws, message, welcome)

        stack.run_cleanly(exchange())

    answered()


def test_agent_socket_survives_any_frames_after_auth(stack: Stack, http: ClientSession) -> None:
    url = stack.ws_url("notification", "/ws/agent")

    @FUZZ
    @given(messages=st.lists(_frames(stack), min_size=1, max_size=4))
    def survives(messages: list[Message]) -> None:
        async def exchange() -> None:
            async with http.ws_connect(url) as ws:
                await ws.send_json({"type": "auth", "api_key": stack.keys["agent"]})
                while _frame(await _receive(ws))["type"] != "ready":
                    pass
                for message in messages:
                    await _send(ws, message)
                await ws.send_json({"type": "ping"})
                # Every frame up to the pong answers a fuzzed frame (or is an offer): none is an internal error.
                while _frame(await _receive(ws))["type"] != "pong":
                    pass

        stack.run_cleanly(exchange())

    survives()


def test_dashboard_socket_answers_every_frame_after_auth(stack: Stack, http: ClientSession) -> None:
    url = stack.ws_url("notification", "/ws/dashboard")

    @FUZZ
    @given(messages=st.lists(_frames(stack), min_size=1, max_size=4))
    def survives(messages: list[Message]) -> None:
        async def exchange() -> None:
            async with http.ws_connect(url) as ws:
                await ws.send_json({"type": "auth", "api_key": stack.keys["supervisor"]})
                assert _frame(await _receive(ws))["type"] == "snapshot"
                for message in messages:
                    await _send(ws, message)
                await ws.send_str("sync")
                # The stream takes no frames: each text message is answered `read_only`, in order.
                expected = sum(kind == "text" for kind, _ in messages) + 1
                answers = 0
                while answers < expected:
                    frame = _frame(await _receive(ws))
                    if frame["type"] == "error":
                        assert frame["code"] == "read_only", frame
                        answers += 1

        stack.run_cleanly(exchange())

    survives()

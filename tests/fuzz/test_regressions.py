"""Fixed regressions: every bad input issue 8 found by fuzzing, replayed exactly against the running stack.

Each answer must be a 4xx with our JSON error (an error frame on a socket), never a 5xx, a plain-text body, a
traceback in the log or a stream that never speaks. Ids name the case and the route, e.g.
``pytest 'tests/fuzz/test_regressions.py::test_deeply_nested_json_body_is_refused[registry-beacons-json]'``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientSession, WSMsgType

from tests.fuzz.stack import Stack, is_error_body, log_mark, raw_request, sign_webhook, tracebacks_since

DEPTH = 5000
"""Far past any sane document; small enough (10 KB) for every service's body limit."""
NESTED = b"[" * DEPTH + b"]" * DEPTH
ANSWER_WITHIN_S = 3.0

Head = tuple[str, bytes, dict[str, str]]
"""(service, request line, headers) of one request."""


def _request(stack: Stack, service: str, line: bytes, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    head = line + b" HTTP/1.1\r\nHost: fuzz\r\nConnection: close"
    for name, value in headers.items():
        head += b"\r\n" + name.encode() + b": " + value.encode()
    return raw_request(stack.urls[service], head, body)


def _assert_refused(status: int, body: bytes, mark: int, statuses: range = range(400, 500)) -> None:
    assert status in statuses, (status, body[:300])
    assert is_error_body(body), (status, body[:300])
    assert tracebacks_since(mark) == []


def _bearer(stack: Stack, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.keys[role]}"}


JSON = {"Content-Type": "application/json"}


def _json_routes(stack: Stack) -> dict[str, Head]:
    """Every route that parses a JSON body, with the credential that gets it as far as the parser."""
    end = f"POST /sessions/{stack.session_id}/end".encode()
    return {
        "token-token": ("token", b"POST /token", JSON),
        "token-customer-start": ("token", b"POST /api/customer/start", JSON),
        "token-agent-connect": ("token", b"POST /api/agent/connect", JSON | _bearer(stack, "agent")),
        "registry-beacons-json": ("registry", b"POST /beacons", JSON),
        "registry-beacons-text": ("registry", b"POST /beacons", {"Content-Type": "text/plain"}),
        "registry-webhook": ("registry", b"POST /webhooks/zoom", JSON),
        "registry-end": ("registry", end, JSON | _bearer(stack, "supervisor")),
    }


JSON_ROUTES = [
    "token-token",
    "token-customer-start",
    "token-agent-connect",
    "registry-beacons-json",
    "registry-beacons-text",
    "registry-webhook",
    "registry-end",
]


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize("where", ["top", "field"])
def test_deeply_nested_json_body_is_refused(stack: Stack, route: str, where: str) -> None:
    service, line, headers = _json_routes(stack)[route]
    body = NESTED if where == "top" else b'{"session_id": "s", "token": "t", "role": 1, "events": ' + NESTED + b"}"
    if route == "registry-webhook":
        headers = headers | sign_webhook(body)  # a valid signature: the body reaches the JSON parser
    mark = log_mark()
    _assert_refused(*_request(stack, service, line, headers, body), mark)


@pytest.mark.parametrize("route", ["token-token", "registry-beacons-json", "registry-webhook", "registry-end"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize(
    "garbage", [b"\x1f\x8b\x08\x00garbage-not-a-stream", b"{not compressed at all}"], ids=["gzip-magic", "plain"]
)
def test_garbled_compressed_body_is_refused(stack: Stack, route: str, encoding: str, garbage: bytes) -> None:
    service, line, headers = _json_routes(stack)[route]
    headers = headers | {"Content-Encoding": encoding}
    if route == "registry-webhook":
        headers = headers | sign_webhook(garbage)
    mark = log_mark()
    _assert_refused(*_request(stack, service, line, headers, garbage), mark)


STAFF_ROUTES = {
    "token-agent-connect": ("token", b"POST /api/agent/connect"),
    "token-agent-token": ("token", b"POST /token"),
    "registry-sessions": ("registry", b"GET /sessions"),
    "registry-session": ("registry", b"GET /sessions/s1"),
    "registry-end": ("registry", b"POST /sessions/s1/end"),
    "notification-stats": ("notification", b"GET /stats"),
    "notification-tickets": ("notification", b"POST /api/tickets"),
    "notification-events": ("notification", b"GET /events"),
    "notification-claim": ("notification", b"POST /api/requests/s1/claim"),
    "notification-dashboard-upgrade": ("notification", b"GET /ws/dashboard"),
}


@pytest.mark.parametrize("route", STAFF_ROUTES)
def test_non_utf8_byte_in_bearer_key_is_a_401(stack: Stack, route: str) -> None:
    service, line = STAFF_ROUTES[route]
    head = line + b" HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nAuthorization: Bearer cbk_\xff\xfeAAAA"
    body = b'{"role": 2, "pin": "123456"}'  # the token service's role-2 token and connect need their body
    if line == b"GET /ws/dashboard":
        head = head.replace(b"Connection: close", b"Connection: Upgrade\r\nUpgrade: websocket")
        head += b"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ZnV6ei1mdXp6LWZ1enotMQ=="
        body = b""
    mark = log_mark()
    status, answer = raw_request(stack.urls[service], head + b"\r\nContent-Type: application/json", body)
    _assert_refused(status, answer, mark, range(401, 402))


@pytest.mark.parametrize("service", ["token", "notification"])
@pytest.mark.parametrize("length", [256, 300, 4000])
def test_static_file_name_of_256_chars_or_more_is_a_404(stack: Stack, service: str, length: int) -> None:
    mark = log_mark()
    status, body = _request(stack, service, b"GET /static/" + b"a" * length, {})
    _assert_refused(status, body, mark, range(404, 405))


STATIC_FILES = {
    "token-demo": ("token", b"GET /demo"),
    "token-static": ("token", b"GET /static/customer.js"),
    "registry-beacon-js": ("registry", b"GET /beacon.js"),
    "notification-agent": ("notification", b"GET /agent"),
    "notification-openapi": ("notification", b"GET /openapi.json"),
}


@pytest.mark.parametrize("route", STATIC_FILES)
@pytest.mark.parametrize("range_", ["w", "bytes=999999999-", "bytes=5-1"])
def test_unsatisfiable_range_on_a_file_is_a_json_416(stack: Stack, route: str, range_: str) -> None:
    """Found by the route fuzz: aiohttp's file response answers a bad ``Range`` with an empty 416."""
    service, line = STATIC_FILES[route]
    mark = log_mark()
    status, body = _request(stack, service, line, {"Range": range_})
    if status in (200, 206):  # a server may ignore a Range it cannot parse
        assert tracebacks_since(mark) == []
    else:
        _assert_refused(status, body, mark, range(416, 417))


@pytest.mark.parametrize(
    "signature", ["v0=\u00e9", "v0=" + "\u2603" * 64, "\u00ff"], ids=["latin1-e-acute", "snowmen", "y-umlaut"]
)
def test_non_ascii_webhook_signature_is_a_401(stack: Stack, signature: str) -> None:
    body = b'{"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}}'
    headers = sign_webhook(body) | {"x-zm-signature": signature}
    mark = log_mark()
    _assert_refused(*_request(stack, "registry", b"POST /webhooks/zoom", headers, body), mark, range(401, 402))


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "nan", "1e400"])
def test_non_finite_since_is_a_400(stack: Stack, value: str) -> None:
    mark = log_mark()
    line = b"GET /sessions?since=" + value.encode()
    _assert_refused(*_request(stack, "registry", line, _bearer(stack, "agent")), mark, range(400, 401))


@pytest.mark.parametrize("value", ["5.8e307", "1.7976931348623157e308"])
def test_huge_finite_since_is_answered(stack: Stack, value: str) -> None:
    """Found by the route fuzz: a finite ``since`` whose milliseconds overflow (sessions or a 400, never a 500)."""
    mark = log_mark()
    status, body = _request(stack, "registry", b"GET /sessions?since=" + value.encode(), _bearer(stack, "agent"))
    if status == 200:
        assert json.loads(body)["sessions"] == [], body[:300]
        assert tracebacks_since(mark) == []
    else:
        _assert_refused(status, body, mark, range(400, 401))


@pytest.mark.parametrize("event_ts", ["1e400", "-1e400", "Infinity", "NaN"])
def test_signed_webhook_with_non_finite_event_ts_is_a_400(stack: Stack, event_ts: str) -> None:
    obj = {"session_id": "zoom-1", "role_type": "customer", "user_id": stack.session_id}
    body = b'{"event": "cobrowse.session_started", "event_ts": ' + event_ts.encode() + b", "
    body += b'"payload": {"object": ' + json.dumps(obj).encode() + b"}}"
    mark = log_mark()
    _assert_refused(
        *_request(stack, "registry", b"POST /webhooks/zoom", sign_webhook(body), body), mark, range(400, 401)
    )


RESUME_ROUTES = ["sse-header", "sse-query", "websocket-header", "websocket-query"]
UPGRADE = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: ZnV6ei1mdXp6LWZ1enotMQ=="
)


def _resume_head(stack: Stack, route: str, resume_id: str) -> bytes:
    """A supervisor's request for ``route`` resuming after ``resume_id``, sent as UTF-8 (percent-encoded in a query)."""
    kind, where = route.split("-")
    path = b"/events" if kind == "sse" else b"/ws/dashboard"
    if where == "query":
        path += b"?last_event_id=" + quote(resume_id).encode()
    head = b"GET " + path + b" HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer " + stack.keys["supervisor"].encode()
    if where == "header":
        head += b"\r\nLast-Event-ID: " + resume_id.encode()
    return head + b"\r\n" + (b"Connection: close" if kind == "sse" else UPGRADE)


@pytest.mark.parametrize("route", RESUME_ROUTES)
# Digits Python's int() refuses though str.isdigit() accepts them (superscripts). Decimal digits of other scripts
# (Arabic-Indic "٣") int() reads as numbers: refusing or resuming from them are both answers, so only the fuzz
# (test_sse_resume.py) sends those.
@pytest.mark.parametrize("digits", ["\u00b2", "1\u00b2", "\u00b9\u00b2\u00b3"], ids=["sup2", "1-sup2", "sup123"])
def test_unicode_digits_in_resume_id_are_a_400(stack: Stack, route: str, digits: str) -> None:
    mark = log_mark()
    status, body = raw_request(stack.urls["notification"], _resume_head(stack, route, digits))
    _assert_refused(status, body, mark, range(400, 401))


async def _first_sse_frame(http: ClientSession, url: str, headers: dict[str, str]) -> dict[str, Any]:
    async with http.get(url, headers=headers) as response:
        async with asyncio.timeout(ANSWER_WITHIN_S):
            async for line in response.content:
                if line.startswith(b"data:"):
                    frame: dict[str, Any] = json.loads(line[5:])
                    return frame
    raise AssertionError("the stream ended without a frame")


async def _first_ws_frame(http: ClientSession, url: str, headers: dict[str, str]) -> dict[str, Any]:
    async with http.ws_connect(url, headers=headers) as ws:
        msg = await ws.receive(timeout=ANSWER_WITHIN_S)
        assert msg.type == WSMsgType.TEXT, msg
        frame: dict[str, Any] = json.loads(msg.data)
        return frame


@pytest.mark.parametrize("route", RESUME_ROUTES)
def test_resume_id_past_the_end_of_the_stream_is_answered(stack: Stack, http: ClientSession, route: str) -> None:
    """An id past the last event is refused, or the stream starts afresh: it must not wait forever in silence."""
    past_end = str(10**15)
    mark = log_mark()
    status, body = raw_request(stack.urls["notification"], _resume_head(stack, route, past_end))
    if status >= 400:
        _assert_refused(status, body, mark)
        return
    headers = _bearer(stack, "supervisor")
    if route.endswith("header"):
        headers["Last-Event-ID"] = past_end
    query = f"?last_event_id={past_end}" if route.endswith("query") else ""
    if route.startswith("sse"):
        frame = stack.run_cleanly(_first_sse_frame(http, stack.urls["notification"] + "/events" + query, headers))
    else:
        frame = stack.run_cleanly(_first_ws_frame(http, stack.ws_url("notification", "/ws/dashboard" + query), headers))
    assert frame["type"] in ("snapshot", "dropped", "error"), frame


@pytest.mark.parametrize("path", ["/ws/agent", "/ws/dashboard"])
@pytest.mark.parametrize("when", ["before-auth", "after-auth"])
def test_deeply_nested_json_frame_gets_an_error_frame(stack: Stack, http: ClientSession, path: str, when: str) -> None:
    role, welcome = ("agent", "ready") if path == "/ws/agent" else ("supervisor", "snapshot")

    async def exchange() -> dict[str, Any]:
        async with http.ws_connect(stack.ws_url("notification", path)) as ws:
            if when == "after-auth":
                await ws.send_json({"type": "auth", "api_key": stack.keys[role]})
                while json.loads((await ws.receive(timeout=ANSWER_WITHIN_S)).data)["type"] != welcome:
                    pass
            await ws.send_str(NESTED.decode())
            while True:  # a live dashboard may stream events before the answer
                msg = await ws.receive(timeout=ANSWER_WITHIN_S)
                assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, ws.close_code)
                answer: dict[str, Any] = json.loads(msg.data)
                if answer["type"] != "event":
                    break
            if when == "before-auth":
                closing = await ws.receive(timeout=ANSWER_WITHIN_S)
                assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
                assert ws.close_code == 4401
            return answer

    frame = stack.run_cleanly(exchange())
    assert frame["type"] == "error" and frame["code"] != "internal", frame

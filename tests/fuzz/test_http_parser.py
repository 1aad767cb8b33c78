"""Header bytes no well-behaved client sends, on a credentialed route of each service.

aiohttp's own parser answers some of these before our middleware runs; the answer must still be our JSON error
(issue 8: "every 4xx from any layer, aiohttp's parser included"), never a 5xx, and nothing may log a traceback.
Headers go out as raw bytes over a socket: control characters, obs-text, invalid UTF-8, and bearer keys with any
byte after ``cbk_``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.stack import FUZZ, Stack, is_error_body, log_mark, raw_request, tracebacks_since

ROUTES = [
    ("token", b"POST /api/agent/connect"),
    ("registry", b"GET /sessions"),
    ("registry", b"POST /webhooks/zoom"),
    ("notification", b"GET /stats"),
    ("notification", b"GET /events"),
    ("notification", b"GET /api/requests/s1"),
]
HEADER_NAMES = [
    b"Authorization",
    b"X-Session-Token",
    b"Last-Event-ID",
    b"x-zm-signature",
    b"x-zm-request-timestamp",
    b"Content-Type",
    b"Content-Encoding",
    b"Accept-Encoding",
    b"Origin",
    b"X-Request-ID",
    b"X-Forwarded-For",
    b"Cookie",
]
# Any byte but CR and LF (those would end the header, not fill it).
VALUE = st.binary(max_size=48).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
HEADER = st.one_of(
    st.tuples(st.sampled_from(HEADER_NAMES), VALUE),
    st.tuples(st.just(b"Authorization"), VALUE.map(lambda v: b"Bearer cbk_" + v)),
)


@pytest.mark.parametrize(("service", "request_line"), ROUTES, ids=[f"{s}-{r.decode()}" for s, r in ROUTES])
def test_raw_header_bytes_get_a_json_answer(stack: Stack, service: str, request_line: bytes) -> None:
    @FUZZ
    @given(headers=st.lists(HEADER, min_size=1, max_size=3))
    def answers(headers: list[tuple[bytes, bytes]]) -> None:
        fuzzed = b"\r\n".join(name + b": " + value for name, value in headers)
        head = request_line + b" HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n" + fuzzed
        mark = log_mark()
        status, body = raw_request(stack.urls[service], head, b"{}")
        assert status < 500, (status, body[:300], head)
        if status >= 400:
            assert is_error_body(body), (status, body[:300], head)
        assert tracebacks_since(mark) == [], head

    answers()

"""The resume id of the supervisor streams, fuzzed: ``Last-Event-ID`` and ``?last_event_id=`` on ``GET /events``
(Server-Sent Events) and on the ``GET /ws/dashboard`` upgrade, with an admin's key.

Values are numbers of any size and sign, and any text (Unicode digits such as ``²`` and ``٣`` included) sent as
UTF-8 bytes. The stream is accepted (200 / 101) or refused with our JSON error; never a 5xx, never a traceback.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.stack import FUZZ, Stack, is_error_body, log_mark, raw_request, tracebacks_since

UPGRADE = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: ZnV6ei1mdXp6LWZ1enotMQ=="
)
ROUTES = {"sse": (b"/events", b"Connection: close"), "websocket": (b"/ws/dashboard", UPGRADE)}

RESUME_ID = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=22),  # digits of every script
    # Any text but control characters (the parser's subject, see test_http_parser.py) and lone surrogates.
    st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=24),
)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("where", ["header", "query"])
def test_any_resume_id_is_accepted_or_refused_cleanly(stack: Stack, route: str, where: str) -> None:
    path, connection = ROUTES[route]
    # The admin's key (admins pass every role check): streams this test leaves for the server to notice as closed
    # count against the admin's caps, not against the supervisor account the WebSocket tests sign in with.
    auth = b"Authorization: Bearer " + stack.keys["admin"].encode()

    @FUZZ
    @given(resume_id=RESUME_ID)
    def answered(resume_id: str) -> None:
        if where == "header":
            target, extra = path, b"\r\nLast-Event-ID: " + resume_id.encode()
        else:
            target, extra = path + b"?last_event_id=" + quote(resume_id).encode(), b""
        head = b"GET " + target + b" HTTP/1.1\r\nHost: fuzz\r\n" + connection + b"\r\n" + auth + extra
        mark = log_mark()
        status, body = raw_request(stack.urls["notification"], head)
        assert status in (101, 200) or 400 <= status < 500, (status, body[:300], resume_id)
        if status >= 400:
            assert is_error_body(body), (status, body[:300], resume_id)
        assert tracebacks_since(mark) == [], resume_id

    answered()

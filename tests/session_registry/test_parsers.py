"""Generated hostile input for the registry's parsers: beacon bodies and webhook signature headers only ever fail
with our 4xx errors, and a beacon's events are each either applied or rejected by index, never both or neither."""

from __future__ import annotations

import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from session_registry.beacons import KNOWN_EVENTS, parse_beacon
from session_registry.errors import BadSignature
from session_registry.webhooks import verify_signature
from shared.errors import CobrowseError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
good_event = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
        "name": st.sampled_from(sorted(KNOWN_EVENTS - {"pincode_updated", "unknown_sdk_event"})),
        "ts": st.integers(0, 2**53 - 1),
        "seq": st.integers(0, 2**53 - 1),
    }
)
any_event = (
    good_event
    | json_values
    | good_event.flatmap(lambda e: st.fixed_dictionaries({k: st.just(v) for k, v in e.items()} | {"ts": json_values}))
)


@settings(max_examples=200, deadline=None)
@given(st.lists(any_event, min_size=1, max_size=12))
def test_every_event_is_applied_or_rejected_by_index(events) -> None:
    raw = json.dumps({"session_id": "s1", "token": "t", "events": events}).encode()
    try:
        beacon = parse_beacon(raw, max_events=100)
    except CobrowseError as exc:
        assert exc.status == 400
        return
    rejected = {r["index"] for r in beacon.rejected}
    assert all(r["property"].startswith(f"events.{r['index']}") for r in beacon.rejected)
    assert len(beacon.events) + len(rejected) == len(events)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_body_bytes_are_a_4xx_or_a_batch(raw) -> None:
    try:
        parse_beacon(raw, max_events=100)
    except CobrowseError as exc:
        assert 400 <= exc.status < 500


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=80))
def test_any_signature_headers_are_a_401_or_verify(timestamp, signature) -> None:
    try:
        verify_signature(b"secret", timestamp=timestamp, signature=signature, body=b"{}", tolerance_s=300)
    except BadSignature as exc:
        assert exc.status == 401
    else:  # only a real signature of a current timestamp gets through
        assert timestamp.isdigit() and abs(int(timestamp) - time.time()) <= 300

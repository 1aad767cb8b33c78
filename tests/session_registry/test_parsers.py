"""Generated hostile input for the registry's parsers: beacon bodies and webhook signature headers only ever fail
with our 4xx errors, and a beacon's events are each either applied or rejected by index, never both or neither."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session_registry import beacons
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


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


hostile_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.sampled_from([1e308, 1e-400]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
) | st.integers(25, 40).map(_nested)
good_payload_event = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
        "name": st.sampled_from(sorted(KNOWN_EVENTS)),
        "ts": st.integers(0, 2**53 - 1) | st.floats(0, 2**53 - 1),
        "seq": st.integers(0, 2**53 - 1),
        "payload": st.fixed_dictionaries({}, optional={"pinCode": st.from_regex(r"[0-9]{6}", fullmatch=True)})
        | st.dictionaries(st.sampled_from(["pinCode", "reason", "original_name", "code", "x"]), hostile_values),
    }
)


def _outcome(parse, raw: bytes):
    try:
        beacon = parse(raw)
    except CobrowseError as exc:
        return type(exc), exc.status, exc.code
    return beacon.session_id, beacon.token, beacon.events, beacon.rejected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(good_payload_event | any_event, min_size=0, max_size=14),
    st.dictionaries(st.sampled_from(["extra", "event"]), hostile_values, max_size=1),
    st.booleans(),
)
def test_the_fast_path_answers_exactly_as_the_event_by_event_path(events, extra, single) -> None:
    """The one-step pydantic parse never accepts what parse_json refuses (NaN, Infinity, 1e400, nesting past its
    limit, anywhere in the body) and, when it takes a body, gives the same events."""
    given = {"event": events[0]} if single and events else {"events": events}
    body = {"session_id": "s1", "token": "t", **extra, **given}
    raw = json.dumps(body, allow_nan=True).encode()
    fast = beacons._all_good(raw, 12)
    full = _outcome(lambda r: beacons._event_by_event(r, 12), raw)
    if fast is not None:
        assert (fast.session_id, fast.token, fast.events, fast.rejected) == full


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ('{"a": NaN}', "malformed_json"),
        ('{"a": -Infinity}', "malformed_json"),
        ('{"a": 1e400}', "malformed_json"),
        ('{"a": ' + "[" * 40 + "]" * 40 + "}", "json_too_deep"),
    ],
)
def test_a_good_looking_beacon_with_a_refused_number_or_nesting_anywhere_is_a_400(payload: str, code: str) -> None:
    event = '{"id": "e1", "name": "heartbeat", "ts": 1, "seq": 1, "payload": ' + payload + "}"
    raw = ('{"session_id": "s1", "token": "t", "events": [' + event + "]}").encode()
    with pytest.raises(CobrowseError) as caught:
        parse_beacon(raw, max_events=100)
    assert (caught.value.status, caught.value.code) == (400, code)


def test_a_typical_beacon_takes_the_one_step_path() -> None:
    token = "v1.3e123f.abcE999"  # what looks like an exponent inside a string is no reason to go the full way
    event = b'{"id":"e1","name":"agent_joined","ts":1e3,"seq":1,"payload":{"n":1.5}}'
    raw = b'{"session_id":"s1","token":"' + token.encode() + b'","events":[' + event + b"]}"
    fast = beacons._all_good(raw, 100)
    assert fast is not None and fast.events == [{"id": "e1", "name": "agent_joined", "ts": 1000, "seq": 1}]

"""parse_json: every hostile document is a BadRequest, never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import BadRequest
from shared.jsonbody import MAX_DEPTH, dumps, parse_json


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"NaN",
        b'{"t": Infinity}',
        b'{"t": 1e400}',
        b'{"t": -1e400}',
        b"\xff\xfe",
        b"",
        b'{"a": 1',
    ],
)
def test_hostile_documents_are_bad_requests(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_json(raw)


def test_depth_limit_is_exact() -> None:
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(BadRequest) as info:
        parse_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert info.value.code == "json_too_deep"


def test_many_shallow_brackets_are_fine() -> None:
    doc = {"events": [{"id": str(i), "payload": {"a": [1, 2]}} for i in range(100)]}
    assert parse_json(json.dumps(doc)) == doc


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_parse_or_bad_request(raw: bytes) -> None:
    try:
        parse_json(raw)
    except BadRequest:
        pass


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.text(st.sampled_from(["a", "\u00e9", "\ud800", "\udbff", "\udc00", "\udfff"])),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_dumps_writes_the_document_the_standard_library_writes(value: object) -> None:
    # Lone surrogates (which JSON allows in a string) and integers past 64 bits, which orjson refuses, included.
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", [{"name": "\ud800"}, [2**70], {"reason": "x\udfff", "n": -(2**64)}])
def test_dumps_falls_back_for_what_orjson_refuses(value: object) -> None:
    assert json.loads(dumps(value)) == value


@pytest.mark.parametrize(
    "raw", [b'{"a": "x\\ud800"}', b'["\\uDFFF"]', b'{"\\udbff": 1}', b'{"a": ["ok", "\\ud83d tail"]}']
)
def test_a_lone_surrogate_is_a_bad_request(raw: bytes) -> None:
    # JSON's grammar allows the escape, but it is no text: Redis's Lua decoder failed on it (a 500 for a beacon).
    with pytest.raises(BadRequest):
        parse_json(raw)


@pytest.mark.parametrize("raw", [b'["\\ud83d\\ude00"]', b'["\\\\ud800"]', b'["\\u00e9"]'])
def test_a_surrogate_pair_and_a_mere_backslash_u_are_fine(raw: bytes) -> None:
    assert parse_json(raw) == json.loads(raw)


def _holds_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, list):
        return any(map(_holds_surrogate, value))
    if isinstance(value, dict):
        return any(_holds_surrogate(key) or _holds_surrogate(item) for key, item in value.items())
    return False


@given(_JSON)
def test_refused_exactly_when_a_string_holds_a_lone_surrogate(value: object) -> None:
    # The standard library's reader joins an escaped pair into one character and keeps a lone half as it is.
    raw = json.dumps(value).encode()
    expected = json.loads(raw)
    if _holds_surrogate(expected):
        with pytest.raises(BadRequest):
            parse_json(raw)
    else:
        assert parse_json(raw) == expected

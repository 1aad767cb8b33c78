"""Every HTTP route of every service, fuzzed from its OpenAPI document with schemathesis.

Each route gets ``FUZZ_EXAMPLES`` (default 200) generated requests: schema-valid and schema-violating ones
(schemathesis' positive and negative modes), each sent with one credential drawn from every kind the route may
see: none, each staff role, a disabled account, unknown and malformed keys, the live customer session's token or
another session's; path ids are sometimes the live session's; webhooks are sometimes signed correctly and beacons
sometimes carry the real session token, so the handlers' authenticated paths run too.

The properties: no 5xx, every 4xx is our JSON error ``{"error": {"code", "message"}}``, and no log line with a
traceback. Test ids are ``<service>-<METHOD> <path>``:
``pytest 'tests/fuzz/test_http_routes.py::test_route_survives_fuzzing[registry-GET /sessions]'``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import given, reject
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode

from tests.fuzz.stack import (
    FUZZ,
    LONE_SURROGATE,
    OPENAPI,
    SERVICES,
    Stack,
    is_error_body,
    log_mark,
    sign_webhook,
    tracebacks_since,
)

SCHEMAS = {service: schemathesis.openapi.from_path(OPENAPI[service]) for service in SERVICES}
SEND_TIMEOUT_S = 10.0

Prepare = Callable[[dict[str, Any], Stack], None]
"""Adds a credential to a serialized request (``requests`` keyword arguments) before it is sent."""


def _operations() -> list[tuple[str, APIOperation]]:
    return [
        (service, result.ok())
        for service, schema in SCHEMAS.items()
        for result in schema.get_all_operations()
        if hasattr(result, "ok")
    ]


def _body_bytes(kwargs: dict[str, Any]) -> bytes:
    """The request body exactly as it will be sent (a signature must cover these bytes)."""
    if "json" in kwargs:
        kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
    data = kwargs.get("data", b"")
    if isinstance(data, str):
        data = kwargs["data"] = data.encode()
    return data if isinstance(data, bytes) else b""


def _signed(kwargs: dict[str, Any], stack: Stack) -> None:
    kwargs["headers"].update(sign_webhook(_body_bytes(kwargs)))


def _session_body(kwargs: dict[str, Any], stack: Stack) -> None:
    """A beacon of the live session: the generated events reach validation and the store."""
    try:
        body = json.loads(_body_bytes(kwargs))
    except ValueError:
        return  # a generated text/plain body that is not JSON: sent as it is
    if isinstance(body, dict):
        body.update(session_id=stack.session_id, token=stack.session_token)
        kwargs["data"] = json.dumps(body).encode()


def _headers(extra: dict[str, str]) -> Prepare:
    def prepare(kwargs: dict[str, Any], stack: Stack) -> None:
        kwargs["headers"].update(extra)

    return prepare


def _credentials(stack: Stack, operation: APIOperation) -> list[Prepare]:
    schemes = {name for requirement in operation.definition.raw.get("security", []) for name in requirement}
    if schemes & {"sessionToken", "sessionTokenQuery"}:
        headers = stack.customer_headers()
    elif "apiKey" in schemes:
        headers = stack.staff_headers()
    else:
        headers = stack.staff_headers() + stack.customer_headers()  # routes without a credential ignore them
    variants: list[Prepare] = [_headers(h) for h in headers]
    if operation.path == "/events":
        variants.append(_headers({"Authorization": f"Bearer {stack.keys['supervisor']}", "Last-Event-ID": "0"}))
    if operation.path == "/webhooks/zoom":
        variants += [_signed] * len(variants)
    if operation.path == "/beacons":
        variants += [_session_body] * len(variants)
    return variants


# Printable ASCII only: bytes aiohttp's parser refuses are test_http_parser.py's subject, and here they would stop
# every route's test at the parser instead of reaching its handler.
_HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_EXTRA_HEADERS = [
    "Accept",
    "Accept-Encoding",
    "Content-Encoding",
    "Content-Type",
    "Cookie",
    "If-Modified-Since",
    "If-None-Match",
    "Last-Event-ID",
    "Origin",
    "Range",
    "X-Forwarded-For",
    "X-Request-ID",
]
_SURROGATE = st.tuples(st.integers(0, 7), LONE_SURROGATE, st.integers(0, 63)).map(
    lambda t: t[1:] if t[0] == 5 else None  # hypothesis favours 0: 5 is drawn about one time in ten
)
"""``(surrogate, which string)`` for a few requests only: a body holding one is refused whole, and most bodies must
reach the handlers."""
EXTRAS = st.fixed_dictionaries(
    {},
    optional={
        "headers": st.dictionaries(st.sampled_from(_EXTRA_HEADERS), _HEADER_VALUE, max_size=3),
        "params": st.dictionaries(st.text(max_size=12), st.text(max_size=24), max_size=3),
        "surrogate": _SURROGATE,
    },
)
"""What a schema does not describe but any client may send: stray query parameters and headers the stack reads
(content negotiation and encoding, CORS, caching and ranges on static files, resume ids, request ids), and a lone
surrogate escape in one string of a JSON body (schemathesis, like ``st.text``, never writes one)."""


def _strings(value: Any) -> list[tuple[Any, Any]]:
    """``(container, key)`` of every string value in a JSON document, depth first (object keys not included)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found: list[tuple[Any, Any]] = []
    for key, item in items:
        found += [(value, key)] if isinstance(item, str) else _strings(item)
    return found


def _add_extras(kwargs: dict[str, Any], extras: dict[str, Any]) -> None:
    kwargs["headers"].update(extras.get("headers", {}))
    if isinstance(kwargs.get("params"), dict):
        kwargs["params"] = {**extras.get("params", {}), **kwargs["params"]}
    if extras.get("surrogate"):
        surrogate, which = extras["surrogate"]
        try:
            body = json.loads(_body_bytes(kwargs))
        except ValueError:
            return  # no JSON body to put it in
        if strings := _strings(body):
            container, key = strings[which % len(strings)]
            container[key] += surrogate
            kwargs["data"] = json.dumps(body).encode()


def _cases(stack: Stack, operation: APIOperation) -> st.SearchStrategy[Case]:
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    params = operation.definition.raw.get("parameters", [])
    if operation.definition.raw.get("requestBody") or any(p["in"] != "path" for p in params):
        # Without a query, header or body there is nothing to violate (the strategy would be unsatisfiable).
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    if "{session_id}" in operation.path:
        # As often as generated ids: with the live session's token these reach the handler's real work.
        live = operation.as_strategy(path_parameters={"session_id": stack.session_id})
        strategies += [live] * len(strategies)
    return st.one_of(strategies)


def _describe(kwargs: dict[str, Any], response: requests.Response, body: bytes) -> str:
    sent = {k: v for k, v in kwargs.items() if k != "data"} | {"data": kwargs.get("data", b"")[:300]}
    return f"{response.status_code} {body[:300]!r} for {sent}"


def _send(session: requests.Session, kwargs: dict[str, Any]) -> tuple[requests.Response, bytes]:
    try:
        response = session.request(**kwargs, stream=True, timeout=SEND_TIMEOUT_S, allow_redirects=False)
    except (UnicodeEncodeError, requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL):
        reject()  # a request no HTTP client can send; the server never sees it
    with response:
        if response.status_code == 200 and response.headers.get("Content-Type", "").startswith("text/event-stream"):
            return response, b""  # a live stream: its status and headers are the answer; hang up
        return response, response.content


@pytest.mark.parametrize(("service", "operation"), _operations(), ids=[f"{s}-{op.label}" for s, op in _operations()])
def test_route_survives_fuzzing(
    stack: Stack, service: str, operation: APIOperation, record_property: Callable[[str, object], None]
) -> None:
    session = requests.Session()
    base_url = stack.urls[service]
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(case=_cases(stack, operation), credential=st.sampled_from(_credentials(stack, operation)), extras=EXTRAS)
    def survives(case: Case, credential: Prepare, extras: dict[str, Any]) -> None:
        kwargs = case.as_transport_kwargs(base_url=base_url)
        _add_extras(kwargs, extras)
        credential(kwargs, stack)
        mark = log_mark()
        response, body = _send(session, kwargs)
        statuses[response.status_code] += 1
        assert response.status_code < 500, _describe(kwargs, response, body)
        if response.status_code >= 400:
            assert is_error_body(body), _describe(kwargs, response, body)
        assert tracebacks_since(mark) == [], _describe(kwargs, response, body)

    try:
        survives()
    finally:
        session.close()
        record_property("statuses", dict(sorted(statuses.items())))  # in the JUnit report: which answers were seen

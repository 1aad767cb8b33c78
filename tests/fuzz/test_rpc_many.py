"""Generated requests to the registry's ``*_many`` NATS endpoints (``registry.sessions.create_many``,
``registry.pins.resolve_many``): envelopes of fuzzed creates and PIN lookups, and JSON documents that are none.

The properties: a request the envelope refuses (no items, more than 64, a malformed one, not JSON) is answered as
a whole with a 400 service error; any other gets one outcome per item, each a reply or an error, never an internal
error; no log line carries a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.messaging import REGISTRY_CREATE_MANY, REGISTRY_RESOLVE_MANY
from tests.fuzz.stack import FUZZ, JSON, Stack

CREATE = st.fixed_dictionaries(
    {"customer_id": st.text(max_size=40) | JSON},
    optional={
        "queue": st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z") | st.text(max_size=70) | JSON,
        "priority": st.integers(min_value=-3, max_value=12) | JSON,
        "custom_pin": st.from_regex(r"\A[A-Z0-9]{1,10}\Z") | st.text(max_size=12) | JSON,
        "idempotency_key": st.from_regex(r"\A[a-z0-9-]{1,20}\Z") | st.text(max_size=140) | JSON,
        "client_ip": st.text(max_size=40),
    },
)
RESOLVE = st.fixed_dictionaries(
    {"pin": st.from_regex(r"\A[0-9]{6}\Z") | st.text(max_size=12) | JSON, "agent_id": st.text(max_size=40) | JSON},
    optional={"client_ip": st.text(max_size=40) | JSON},
)
ITEM = st.fixed_dictionaries({"request": CREATE | RESOLVE | JSON}, optional={"request_id": st.text(max_size=40) | JSON})
PAYLOAD = st.fixed_dictionaries({"items": st.lists(ITEM, max_size=66)}) | JSON


@pytest.fixture(scope="module", name="nc")
def _nc(stack: Stack) -> Iterator[nats.aio.client.Client]:
    client = stack.run(nats.connect(stack.nats_url))
    yield client
    stack.run(client.close())


@pytest.mark.parametrize("subject", [REGISTRY_CREATE_MANY, REGISTRY_RESOLVE_MANY])
def test_any_request_gets_a_400_or_an_outcome_per_item(stack: Stack, nc: Any, subject: str) -> None:
    @given(payload=PAYLOAD)
    @FUZZ
    def check(payload: Any) -> None:
        async def exchange() -> None:
            reply = await nc.request(subject, json.dumps(payload).encode(), timeout=10)
            status = (reply.headers or {}).get("Nats-Service-Error-Code")
            if status is not None:
                assert status == "400", reply.data
                return
            outcomes = json.loads(reply.data)["outcomes"]
            assert len(outcomes) == len(payload["items"])
            for outcome in outcomes:
                assert (outcome.get("reply") is None) != (outcome.get("error") is None), outcome
                assert outcome.get("error") is None or outcome["error"]["status"] < 500, outcome

        stack.run_cleanly(exchange())

    check()

"""``registry.sessions.create_many`` and ``registry.pins.resolve_many`` with their client (shared/rpc_many.py):
concurrent calls share requests, each is answered on its own."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared.errors import RemoteError
from shared.messaging import (
    REGISTRY_CREATE_MANY,
    REGISTRY_RESOLVE_MANY,
    CreatedSession,
    CreateSession,
    ResolvePin,
    SessionView,
)
from shared.rpc import call
from shared.rpc_many import Item, Many, ManyCaller, Outcomes

from .conftest import ev

pytestmark = pytest.mark.cluster


def creates(nc) -> ManyCaller[CreateSession, CreatedSession]:
    return ManyCaller(nc, REGISTRY_CREATE_MANY, CreatedSession, timeout_s=5)


async def test_concurrent_creates_share_requests_and_each_gets_its_own_session(nc, client, events) -> None:
    batches: list[int] = []

    async def observe(msg) -> None:  # a plain subscription sees a copy of every request
        batches.append(len(json.loads(msg.data)["items"]))

    observer = await nc.subscribe(REGISTRY_CREATE_MANY, cb=observe)
    caller = creates(nc)
    created = await asyncio.gather(*(caller.call(CreateSession(customer_id=f"c{i}")) for i in range(200)))
    await nc.flush()
    await observer.unsubscribe()
    ids = {c.session.session_id for c in created}
    assert len(ids) == 200
    assert sum(batches) == 200 and len(batches) < 200  # shared: fewer requests than creates
    for sid in ids:
        await events.wait(sid, "created")


async def test_each_create_of_a_batch_succeeds_or_fails_on_its_own(nc, client) -> None:
    requests = [
        CreateSession(customer_id="ok"),
        CreateSession(customer_id="bad", queue="no spaces allowed"),
        CreateSession(customer_id="pin-1", custom_pin="SAME42"),
        CreateSession(customer_id="pin-2", custom_pin="SAME42"),
        CreateSession(customer_id="key-1", idempotency_key="k-once"),
        CreateSession(customer_id="key-2", idempotency_key="k-once"),
    ]
    batch = Many(items=[Item(request=r) for r in requests])
    outcomes = (await call(nc, REGISTRY_CREATE_MANY, batch, Outcomes[CreatedSession])).outcomes
    assert len(outcomes) == 6
    assert outcomes[0].reply is not None and outcomes[0].error is None
    assert outcomes[1].error is not None
    assert (outcomes[1].error.status, outcomes[1].error.code) == (400, "validation_failed")
    assert sorted((o.error.code if o.error else "created") for o in outcomes[2:4]) == ["created", "pin_taken"]
    keyed = [o.reply for o in outcomes[4:6]]
    assert keyed[0] is not None and keyed[1] is not None
    assert keyed[0].session.session_id == keyed[1].session.session_id


async def test_the_client_raises_a_refused_call_as_the_single_request_would(nc, client) -> None:
    good, bad = await asyncio.gather(
        creates(nc).call(CreateSession(customer_id="ok")),
        creates(nc).call(CreateSession(customer_id="bad", queue="a.b")),
        return_exceptions=True,
    )
    assert isinstance(good, CreatedSession) and good.session.queue == "support"
    assert isinstance(bad, RemoteError) and (bad.status, bad.code) == (400, "validation_failed")


async def test_concurrent_pin_lookups_share_requests_and_each_gets_its_answer(nc, client, new_session) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "515151"}))
    pins = ManyCaller(nc, REGISTRY_RESOLVE_MANY, SessionView, timeout_s=5)
    asked = ["515151"] * 20 + ["999999"]
    found = await asyncio.gather(*(pins.call(ResolvePin(pin=p, agent_id="a1")) for p in asked), return_exceptions=True)
    assert all(isinstance(f, SessionView) and f.session_id == session.id for f in found[:20])
    assert isinstance(found[20], RemoteError) and found[20].code == "pin_not_found"


@pytest.mark.parametrize("count", [0, 65])
async def test_a_batch_of_no_calls_or_too_many_is_refused_whole(nc, client, count) -> None:
    payload = json.dumps({"items": [{"request": {"customer_id": "c"}}] * count}).encode()
    reply = await nc.request(REGISTRY_CREATE_MANY, payload, timeout=5)
    assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "400"


async def test_a_full_batch_of_keyed_creates_on_two_replicas_each_gets_its_session(nc, start_registry) -> None:
    """64 keys per request, twice over: each key's claim is a script (bounded, shared round trips), not a command per
    create that could take a connection each (a cluster pool refuses past its size)."""
    await start_registry()
    await start_registry()
    caller = creates(nc)
    requests = [CreateSession(customer_id=f"c{i}", idempotency_key=f"burst-{i % 128}") for i in range(256)]
    created = await asyncio.gather(*(caller.call(r) for r in requests))
    by_key: dict[str, set[str]] = {}
    for request, answer in zip(requests, created, strict=True):
        by_key.setdefault(str(request.idempotency_key), set()).add(answer.session.session_id)
    assert len(by_key) == 128 and all(len(ids) == 1 for ids in by_key.values())
    assert len({next(iter(ids)) for ids in by_key.values()}) == 128

"""Contract 9: ``CreateSession.idempotency_key``: a retried customer start gets the session (and the beacon token)
the first one created, even when the retries race."""

from __future__ import annotations

import asyncio

import pytest

from shared.errors import RemoteError
from shared.messaging import REGISTRY_CREATE, CreatedSession, CreateSession
from shared.rpc import call

from .conftest import KEYS, Session, ev, every_partition

pytestmark = pytest.mark.cluster


async def create(nc, key: str | None, **fields) -> CreatedSession:
    request = CreateSession(customer_id="c1", idempotency_key=key, **fields)
    return await call(nc, REGISTRY_CREATE, request, CreatedSession)


async def test_a_known_key_answers_the_same_session_and_token(nc, client, events, redis) -> None:
    first = await create(nc, "start-1")
    again = await create(nc, "start-1")
    other = await create(nc, "start-2")
    plain = [await create(nc, None), await create(nc, None)]
    assert (again.session.session_id, again.beacon_token) == (first.session.session_id, first.beacon_token)
    assert len({first.session.session_id, other.session.session_id, *(p.session.session_id for p in plain)}) == 4
    assert 0 < await redis.pttl(KEYS.idem_key("start-1")) <= 86_400_000
    await events.wait(first.session.session_id, "created")
    assert len(events.of(first.session.session_id, "created")) == 1


async def test_a_retry_returns_the_session_as_it_is_now(nc, client) -> None:
    first = await create(nc, "start-3")
    await Session(client, first).beacon(ev("pincode_updated", {"pinCode": "330001"}))
    again = await create(nc, "start-3", custom_pin="OTHER1")  # the retry's fields change nothing
    assert (again.session.state, again.session.pin, again.session.version) == ("waiting", "330001", 2)


async def test_concurrent_creates_with_one_key_create_one_session(nc, start_registry, redis, events) -> None:
    await start_registry()
    await start_registry()  # two replicas answer the same subject
    created = await asyncio.gather(*[create(nc, "race-1") for _ in range(200)])
    assert len({(c.session.session_id, c.beacon_token) for c in created}) == 1
    assert sum([await redis.zcard(key) for key in every_partition("index")]) == 1
    assert len([k async for k in redis.scan_iter("reg:{p*}:s:*") if not k.endswith(":h")]) == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "ünï", "a\nb"])
async def test_bad_keys_are_refused(nc, client, key) -> None:
    with pytest.raises(RemoteError) as info:
        await create(nc, key)
    assert (info.value.status, info.value.code) == (400, "validation_failed")

"""Ended sessions leave Redis after their retention; their view and history are then read back from JetStream."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest

from shared.errors import RemoteError
from shared.keys import NATS_RECONNECTED
from shared.messaging import REGISTRY_GET, SessionRef, SessionState, SessionView
from shared.rpc import call

from .conftest import KEYS, OwnNats, ev, open_session
from .test_read_api import bearer, keys

pytestmark = pytest.mark.cluster


async def forget(redis, session_id: str) -> None:
    """As if the ended retention had passed: Redis lets the session's keys go."""
    assert await redis.delete(KEYS.session(session_id)) == 1
    await redis.delete(KEYS.history(session_id))


async def test_an_ended_session_gone_from_redis_is_read_from_jetstream(client, new_session, events, redis) -> None:
    api = await keys(redis)
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "710001"}), ev("agent_joined"))
    await session.beacon(ev("session_ended"))
    await events.wait(session.id, "ended")
    live = await (await client.get(f"/sessions/{session.id}", headers=bearer(api["supervisor"]))).json()
    await forget(redis, session.id)

    response = await client.get(f"/sessions/{session.id}", headers=bearer(api["supervisor"]))
    assert response.status == 200
    body = await response.json()
    assert body["session"] == live["session"]
    assert body["session"]["state"] == SessionState.ENDED and body["session"]["pin"] == "710001"
    # Every published change, not just the few entries Redis kept for the retention.
    assert [(h["type"], h["from"], h["to"]) for h in body["history"]] == [
        ("created", None, "created"),
        ("pin_assigned", "created", "waiting"),
        ("agent_joined", "waiting", "active"),
        ("ended", "active", "ended"),
    ]
    # An agent never reads a PIN from the registry, archived or not.
    agent = await (await client.get(f"/sessions/{session.id}", headers=bearer(api["agent"]))).json()
    assert agent["session"]["pin"] is None and agent["history"][1]["data"]["pin"] is None


async def test_a_session_with_no_events_anywhere_is_a_404(client, redis, events) -> None:
    api = await keys(redis)
    for session_id in (uuid.uuid4().hex, "not-one-of-ours"):
        response = await client.get(f"/sessions/{session_id}", headers=bearer(api["supervisor"]))
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "session_not_found"


async def test_jetstream_down_is_a_503_for_a_session_gone_from_redis(own_nats: OwnNats, start_registry, redis) -> None:
    api = await keys(redis)
    registry = await start_registry(nats_url=own_nats.url)
    nc = await nats.connect(own_nats.url, max_reconnect_attempts=0)
    session = await open_session(nc, registry)
    await nc.close()
    await forget(redis, session.id)
    own_nats.stop()
    response = await registry.get(f"/sessions/{session.id}", headers=bearer(api["supervisor"]))
    assert response.status == 503
    assert "Retry-After" in response.headers
    assert (await response.json())["error"]["code"] == "unavailable"
    back = asyncio.Event()
    registry.app[NATS_RECONNECTED].append(back.set)
    own_nats.start()
    async with asyncio.timeout(10):  # its shutdown drains the connection: let it reconnect first
        await back.wait()


async def test_registry_get_answers_a_session_gone_from_redis_from_jetstream(nc, new_session, events, redis) -> None:
    session = await new_session()
    await session.beacon(ev("session_ended"))
    (ended,) = await events.wait(session.id, "ended")
    await forget(redis, session.id)
    view = await call(nc, REGISTRY_GET, SessionRef(session_id=session.id), SessionView)
    assert view == ended.session
    with pytest.raises(RemoteError) as info:
        await call(nc, REGISTRY_GET, SessionRef(session_id=uuid.uuid4().hex), SessionView)
    assert (info.value.status, info.value.code) == (404, "session_not_found")

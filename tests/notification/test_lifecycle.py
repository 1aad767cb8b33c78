"""A request's end as its agent and its customer see it: session_ended for the agent, cancel ends the session."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from session_registry.app import create_app as create_registry
from session_registry.settings import Settings as RegistrySettings
from shared.messaging import (
    REGISTRY_CREATE,
    REGISTRY_GET,
    CreatedSession,
    CreateSession,
    SessionRef,
    SessionState,
    SessionView,
)
from shared.rpc import call

from .conftest import session_token

pytestmark = pytest.mark.cluster

WAITING, ENDED, ACTIVE = SessionState.WAITING, SessionState.ENDED, SessionState.ACTIVE
REGISTRY_SECRET = "test-registry-session-secret-0123456789"


async def test_agent_is_told_when_its_claimed_session_ends_and_gets_its_capacity_back(
    replica, session, events, available, waiting, token_service
):
    client = await replica()
    alice = await available(client, "alice")
    sid = await waiting()
    await alice.expect("offer", session_id=sid)
    await alice.send({"type": "claim", "session_id": sid})
    await alice.expect("claimed", session_id=sid)
    queued = await waiting()
    await events.expect("queued", session_id=queued)  # alice is full: not offered

    await session(sid, ACTIVE, WAITING, "agent_joined")
    await session(sid, ENDED, ACTIVE, "ended", ended_reason="ended_by_customer")
    ended = await alice.expect("session_ended", session_id=sid)
    assert ended == {"type": "session_ended", "session_id": sid, "reason": "ended_by_customer"}
    await alice.expect("offer", session_id=queued)  # the capacity it held is free again
    await events.expect("released", agent_id=alice.agent_id)
    status = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
    body = await status.json()
    assert body["state"] == "ended" and body["agent_name"] == "alice"


async def test_claimed_request_shows_the_agents_name_to_the_customer(replica, available, waiting, token_service):
    client = await replica()
    alice = await available(client, "Alice Agent")
    sid = await waiting()
    await alice.expect("offer", session_id=sid)
    status = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
    assert (await status.json())["agent_name"] is None
    await alice.send({"type": "claim", "session_id": sid})
    await alice.expect("claimed", session_id=sid)
    status = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
    assert (await status.json())["agent_name"] == "Alice Agent"


@pytest.fixture(name="registry_app")
async def _registry_app(aiohttp_client, redis_url, nats_url):
    settings: dict[str, Any] = {
        "redis_url": redis_url,
        "nats_url": nats_url,
        "SESSION_TOKEN_SECRET": REGISTRY_SECRET,
        "ZOOM_WEBHOOK_SECRET_TOKEN": "test-zoom-webhook-secret",
        "timer_poll_interval_s": 0.05,
    }
    return await aiohttp_client(create_registry(RegistrySettings(**settings)))


async def _registry_session(nc, registry) -> tuple[str, str]:
    """A registry session whose page reported its PIN (state waiting); returns its id and session token."""
    created = await call(nc, REGISTRY_CREATE, CreateSession(customer_id="c1", customer_name="Ada"), CreatedSession)
    sid, token = created.session.session_id, created.beacon_token
    pin = {"id": uuid.uuid4().hex, "name": "pincode_updated", "ts": 1, "seq": 1, "payload": {"pinCode": "777111"}}
    response = await registry.post("/beacons", json={"session_id": sid, "token": token, "events": [pin]})
    assert response.status == 202, await response.text()
    return sid, token


async def test_cancel_ends_the_registry_session_at_once(replica, registry_app, nc, events, available):
    client = await replica(session_token_secret=REGISTRY_SECRET, offer_timeout_s=10.0)
    alice = await available(client, "alice")
    sid, token = await _registry_session(nc, registry_app)
    await alice.expect("offer", session_id=sid)

    async with asyncio.timeout(1.0):  # the deadline: the registry session ends within 1 s of the cancel
        response = await client.delete(f"/api/requests/{sid}", headers={"X-Session-Token": token})
        assert response.status == 200, await response.text()
        view = await call(nc, REGISTRY_GET, SessionRef(session_id=sid), SessionView)
    assert view.state is SessionState.ENDED and view.ended_reason == "cancelled"
    assert (await response.json())["state"] == "cancelled"
    await alice.expect("offer_revoked", session_id=sid, reason="cancelled")
    left = await events.expect("left", session_id=sid)
    assert left["data"] == {"reason": "cancelled"}


async def test_cancel_with_the_registry_unreachable_is_503_and_changes_nothing(replica, available, waiting):
    client = await replica(offer_timeout_s=10.0, registry_timeout_s=0.3)  # no registry on NATS
    alice = await available(client, "alice")
    sid = await waiting()
    await alice.expect("offer", session_id=sid)
    response = await client.delete(f"/api/requests/{sid}", headers={"X-Session-Token": session_token(sid)})
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "unavailable"
    status = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
    assert (await status.json())["state"] == "queued"
    await alice.send({"type": "claim", "session_id": sid})  # still on offer to alice
    assert (await alice.expect(("claimed", "error"), session_id=sid))["type"] == "claimed"

"""Held requests: while a customer is away (session ``reconnecting``) its request is never offered, keeps its place."""

from __future__ import annotations

import pytest

from shared.accounts import Role
from shared.messaging import SessionState

from .conftest import new_session_id, session_token

pytestmark = pytest.mark.cluster

WAITING, CREATED, RECONNECTING, ENDED = (
    SessionState.WAITING,
    SessionState.CREATED,
    SessionState.RECONNECTING,
    SessionState.ENDED,
)


async def _status(client, sid):
    response = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_closed_tab_is_never_offered_while_away_and_regains_its_place(
    replica, session, events, available, account
):
    client = await replica(offer_timeout_s=10.0)
    alice = await available(client, "alice")
    away, second, third = new_session_id(), new_session_id(), new_session_id()
    await session(away, WAITING, CREATED)
    await alice.expect("offer", session_id=away)

    await session(away, RECONNECTING, WAITING, "reconnecting")  # the tab closed (page_hidden: unload)
    await alice.expect("offer_revoked", session_id=away, reason="held")
    await events.expect("held", session_id=away)
    held = await _status(client, away)
    assert held["state"] == "held" and held["position"] is None

    # Customers behind it are served meanwhile, and it is counted in nobody's position.
    await session(second, WAITING, CREATED)
    await alice.expect("offer", session_id=second)
    await session(third, WAITING, CREATED)
    await events.expect("queued", session_id=third)
    assert (await _status(client, second))["position"] == 1
    assert (await _status(client, third))["position"] == 2
    _, supervisor_key = await account("kim", Role.SUPERVISOR)
    stats = await client.get("/stats", headers={"Authorization": f"Bearer {supervisor_key}"})
    assert [q["waiting"] for q in (await stats.json())["queues"] if q["queue"] == "support"] == [2]

    await session(away, WAITING, RECONNECTING, "resumed")  # the page is back
    await events.expect("resumed", session_id=away)
    assert [(await _status(client, sid))["position"] for sid in (away, second, third)] == [1, 2, 3]
    # While it was away, alice was never offered it again.
    assert not [f for f in await alice.sync() if f["type"] == "offer" and f["session_id"] == away]

    await alice.send({"type": "decline", "session_id": second})
    assert (await alice.expect("offer"))["session_id"] == away  # back at the head of the line, before `third`


async def test_held_request_whose_session_ends_leaves_as_abandoned(replica, session, events, available):
    client = await replica(default_mode="broadcast")
    alice = await available(client, "alice")
    sid = await _queued_then_held(session, events, alice)
    await session(sid, ENDED, RECONNECTING, "ended")  # the reconnect window ran out
    left = await events.expect("left", session_id=sid)
    assert left["data"] == {"reason": "abandoned"}
    assert (await _status(client, sid))["state"] == "ended"


async def test_held_request_uses_the_registry_ended_reason(replica, session, events, available):
    await replica(default_mode="broadcast")
    client = await replica(default_mode="broadcast")
    alice = await available(client, "alice")
    sid = await _queued_then_held(session, events, alice)
    await session(sid, ENDED, RECONNECTING, "ended", ended_reason="ended_by_supervisor")
    assert (await events.expect("left", session_id=sid))["data"] == {"reason": "ended_by_supervisor"}


async def test_held_request_cannot_be_claimed(replica, session, events, available, token_service):
    client = await replica(default_mode="broadcast")
    alice = await available(client, "alice")
    sid = await _queued_then_held(session, events, alice)
    await alice.send({"type": "claim", "session_id": sid})
    assert (await alice.expect("error", session_id=sid))["code"] == "request_gone"
    assert (await _status(client, sid))["no_agents"] is False


async def _queued_then_held(session, events, sock) -> str:
    sid = new_session_id()
    await session(sid, WAITING, CREATED)
    await sock.expect("offer", session_id=sid)
    await session(sid, RECONNECTING, WAITING, "reconnecting")
    await sock.expect("offer_revoked", session_id=sid, reason="held")
    await events.expect("held", session_id=sid)
    return sid

"""The customer's side: queue position and estimated wait, cancelling; overflow and 'no agents'."""

from __future__ import annotations

import json

import pytest

from shared.messaging import SessionState

from .conftest import new_session_id, session_token

pytestmark = pytest.mark.cluster

WAITING, CREATED = SessionState.WAITING, SessionState.CREATED


async def _status(client, sid, **params):
    response = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid), **params})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_queue_position_follows_priority_then_arrival(replica, session, events):
    client = await replica()
    first, second, urgent = new_session_id(), new_session_id(), new_session_id()
    for sid, priority in ((first, 0), (second, 0), (urgent, 5)):
        await session(sid, WAITING, CREATED, priority=priority)
        await events.expect("queued", session_id=sid)

    assert (await _status(client, urgent))["position"] == 1
    assert (await _status(client, first))["position"] == 2
    body = await _status(client, second)
    assert body["position"] == 3
    assert body["state"] == "queued" and body["queue"] == "support"
    assert body["agents_available"] == 0 and body["no_agents"] is True
    assert body["estimated_wait_s"] is None  # no claims yet to estimate from


async def test_status_needs_the_sessions_own_token(replica, session, events):
    client = await replica()
    sid, other = new_session_id(), new_session_id()
    await session(sid, WAITING, CREATED)
    await events.expect("queued", session_id=sid)
    assert (await client.get(f"/api/requests/{sid}")).status == 403
    wrong = await client.get(f"/api/requests/{sid}", headers={"X-Session-Token": session_token(other)})
    assert wrong.status == 403
    assert (await wrong.json())["error"]["code"] == "bad_session_token"
    right = await client.get(f"/api/requests/{sid}", headers={"X-Session-Token": session_token(sid)})
    assert right.status == 200
    missing = await client.get(f"/api/requests/{other}", params={"token": session_token(other)})
    assert missing.status == 404


async def test_cancel_takes_request_out_and_tells_agents(replica, events, available, waiting, registry_standin):
    client = await replica(offer_timeout_s=10.0)
    alice = await available(client, "alice")
    sid = await waiting()
    await alice.expect("offer", session_id=sid)

    response = await client.delete(f"/api/requests/{sid}", headers={"X-Session-Token": session_token(sid)})
    assert response.status == 200
    assert (await response.json())["state"] == "cancelled"
    await alice.expect("offer_revoked", session_id=sid, reason="cancelled")
    left = await events.expect("left", session_id=sid)
    assert left["data"] == {"reason": "cancelled"}
    again = await client.delete(f"/api/requests/{sid}", headers={"X-Session-Token": session_token(sid)})
    assert again.status == 200  # cancelling twice is harmless


async def test_session_ending_or_joined_elsewhere_revokes_offer(replica, session, events, available):
    client = await replica(offer_timeout_s=10.0)
    alice = await available(client, "alice", capacity=2)
    ended, joined = new_session_id(), new_session_id()
    await session(ended, WAITING, CREATED)
    await session(joined, WAITING, CREATED)
    await alice.expect("offer", session_id=ended)
    await alice.expect("offer", session_id=joined)

    await session(ended, SessionState.ENDED, WAITING)
    await session(joined, SessionState.ACTIVE, WAITING)
    await alice.expect("offer_revoked", session_id=ended, reason="ended")
    await alice.expect("offer_revoked", session_id=joined, reason="taken")
    assert (await _status(client, joined))["state"] == "joined"


async def test_overdue_request_moves_to_overflow_queue(replica, events, available, waiting):
    client = await replica(max_wait_s=0.2, overflow_action="move", overflow_queue="overflow")
    helper = await available(client, "overflow-helper", queues=["overflow"])
    sid = await waiting()

    escalated = await events.expect("escalated", session_id=sid)
    assert escalated["queue"] == "support"
    assert escalated["data"]["action"] == "move" and escalated["data"]["to_queue"] == "overflow"
    offer = await helper.expect("offer", session_id=sid)
    assert offer["queue"] == "overflow"
    body = await _status(client, sid)
    assert body["queue"] == "overflow" and body["escalated"] is True


async def test_overdue_request_is_reprioritised(replica, events, waiting):
    client = await replica(queue_max_wait_s={"support": 0.2}, overflow_priority_boost=7)
    sid = await waiting(priority=1)
    escalated = await events.expect("escalated", session_id=sid)
    assert escalated["data"] == {"action": "priority", "to_queue": "support", "priority": 8}
    body = await _status(client, sid)
    assert (body["priority"], body["escalated"], body["queue"]) == (8, True, "support")


async def test_queue_without_agents_is_announced_and_then_served(replica, events, available, waiting):
    client = await replica()
    sid = await waiting(queue="billing")
    await events.expect("no_agents", queue="billing")
    assert (await _status(client, sid))["no_agents"] is True

    alice = await available(client, "alice", queues=["billing"])
    await events.expect("agents_available", queue="billing")
    await alice.expect("offer", session_id=sid)
    assert (await _status(client, sid))["agents_available"] == 1


async def test_session_with_unusable_queue_name_waits_in_default_queue(replica, events, waiting):
    client = await replica()
    sid = await waiting(queue="not a.subject>")
    await events.expect("queued", session_id=sid, queue="support")
    assert (await _status(client, sid))["queue"] == "support"


async def test_status_stream_follows_the_request_until_it_is_claimed(
    replica, session, events, token_service, available
):
    client = await replica(offer_timeout_s=10.0)
    first, second = new_session_id(), new_session_id()
    await session(first, WAITING, CREATED)
    await events.expect("queued", session_id=first)  # sessions are applied concurrently: first in line first
    await session(second, WAITING, CREATED)
    await events.expect("queued", session_id=second)

    response = await client.get(f"/api/requests/{second}/events", params={"token": session_token(second)})
    assert response.headers["Content-Type"] == "text/event-stream"

    async def next_status():
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                return json.loads(line[6:])

    assert (await next_status())["position"] == 2
    await session(first, SessionState.ENDED, WAITING)  # the customer ahead leaves
    assert (await next_status())["position"] == 1

    alice = await available(client, "alice")
    await alice.expect("offer", session_id=second)
    await alice.send({"type": "claim", "session_id": second})
    await alice.expect("claimed")
    final = await next_status()
    assert final["state"] == "claimed" and final["position"] is None
    assert (await response.content.read()).strip() == b""  # the stream ended


async def test_last_agent_going_away_announces_no_agents(replica, session, events, token_service, available):
    client = await replica(offer_timeout_s=10.0)
    alice = await available(client, "alice", queues=["solo"])
    busy, waiting = new_session_id(), new_session_id()
    await session(busy, WAITING, CREATED, queue="solo")
    await alice.expect("offer", session_id=busy)
    await alice.send({"type": "claim", "session_id": busy})
    await alice.expect("claimed")
    await session(waiting, WAITING, CREATED, queue="solo")  # alice is at capacity: it just waits
    await events.expect("queued", session_id=waiting)

    await alice.send({"type": "status", "status": "away", "queues": ["solo"]})
    await events.expect("no_agents", queue="solo")
    assert (await _status(client, waiting))["no_agents"] is True

"""Help requests offered to agents: offer, claim, timeout and re-offer, decline, capacity, disconnects."""

from __future__ import annotations

import pytest

from shared.messaging import SessionState

from .conftest import new_session_id

pytestmark = pytest.mark.cluster

WAITING = SessionState.WAITING


async def test_waiting_session_is_offered_and_claimed_with_pin_and_token(replica, token_service, available, waiting):
    client = await replica()
    alice = await available(client, "alice")
    sid = await waiting(pin="PIN777")

    offer = await alice.expect("offer", session_id=sid)
    assert offer["queue"] == "support" and offer["mode"] == "offer"
    assert "pin" not in offer  # the PIN goes to the agent who wins the claim only

    await alice.send({"type": "claim", "session_id": sid})
    claimed = await alice.expect("claimed", session_id=sid)
    assert claimed["pin"] == "PIN777"
    assert claimed["token"] == f"jwt-for-{alice.agent_id}"
    assert claimed["desk_url"].startswith("https://")
    assert token_service[0].pin == "PIN777" and token_service[0].account_id == alice.agent_id


async def test_unanswered_offer_times_out_sets_agent_away_and_moves_on(replica, agent, available, waiting):
    client = await replica()
    alice = await available(client, "alice")
    bob = await agent(client, "bob")
    await bob.available()  # alice has been idle longer: she is offered first
    sid = await waiting()

    await alice.expect("offer", session_id=sid)
    revoked = await alice.expect("offer_revoked", session_id=sid)
    assert revoked["reason"] == "timeout"
    status = await alice.expect("status")
    assert status == {"type": "status", "status": "away", "reason": "offer_timeout"}
    await bob.expect("offer", session_id=sid)


async def test_declined_offer_goes_to_the_next_agent_and_never_back(replica, token_service, available, waiting):
    client = await replica(offer_timeout_s=5.0)
    alice = await available(client, "alice")
    bob = await available(client, "bob")
    sid = await waiting()

    await alice.expect("offer", session_id=sid)
    await alice.send({"type": "decline", "session_id": sid})
    await bob.expect("offer", session_id=sid)
    await bob.send({"type": "decline", "session_id": sid})
    assert not [f for f in await alice.sync() if f["type"] == "offer"]
    await alice.send({"type": "claim", "session_id": sid})
    error = await alice.expect("error")
    assert error["code"] == "not_offered"


async def test_capacity_limits_concurrent_offers_and_claims(replica, session, token_service, available):
    client = await replica(offer_timeout_s=5.0)
    alice = await available(client, "alice", capacity=2)
    first, second, third = new_session_id(), new_session_id(), new_session_id()
    for sid in (first, second):
        await session(sid, WAITING, SessionState.CREATED)
        await alice.expect("offer", session_id=sid)
    await session(third, WAITING, SessionState.CREATED)
    await alice.send({"type": "claim", "session_id": first})
    await alice.expect("claimed", session_id=first)
    assert not [f for f in await alice.sync() if f["type"] == "offer"]  # one claimed + one offered = 2

    await session(first, SessionState.ENDED, SessionState.ACTIVE)  # capacity comes back
    await alice.expect("offer", session_id=third)


async def test_dropped_agent_offer_moves_on_at_once(replica, available, waiting):
    client = await replica(offer_timeout_s=30.0)
    alice = await available(client, "alice")
    bob = await available(client, "bob")
    sid = await waiting()

    await alice.expect("offer", session_id=sid)
    await alice.ws.close()
    await bob.expect("offer", session_id=sid, within=5.0)  # far sooner than the 30 s offer timeout


async def test_half_open_agent_socket_is_detected_by_heartbeat(replica, session, available, waiting):
    client = await replica(offer_timeout_s=30.0, heartbeat_s=0.3)
    await available(client, "alice", autoping=False)  # never answers pings, like a dead network path
    bob = await available(client, "bob")
    sid = await waiting()

    await bob.expect("offer", session_id=sid)
    await session(sid, SessionState.ENDED, WAITING)
    await bob.expect("offer_revoked", session_id=sid, reason="ended")


async def test_reconnecting_agent_finds_its_claimed_sessions_in_ready(replica, agent, account, token_service, waiting):
    client = await replica()
    agent_id, api_key = await account("alice")
    alice = await agent(client, api_key=api_key, agent_id=agent_id)
    await alice.available()
    sid = await waiting(pin="BACK42")
    await alice.expect("offer", session_id=sid)
    await alice.send({"type": "claim", "session_id": sid})
    await alice.expect("claimed")
    await alice.ws.close()

    ws = await client.ws_connect("/ws/agent")
    await ws.send_json({"type": "auth", "api_key": api_key})
    ready = await ws.receive_json()
    assert ready["status"] == "available" and ready["queues"] == ["support"]
    assert ready["sessions"] == [{"session_id": sid, "queue": "support", "pin": "BACK42"}]


async def test_queue_mode_is_set_per_queue(replica, available, waiting):
    client = await replica(queue_modes={"vip": "broadcast"})
    alice = await available(client, "alice", queues=["vip", "support"], capacity=2)
    bob = await available(client, "bob", queues=["vip", "support"], capacity=2)
    vip = await waiting(queue="vip")
    for sock in (alice, bob):
        assert (await sock.expect("offer", session_id=vip))["mode"] == "broadcast"
    support = await waiting()
    assert (await alice.expect("offer", session_id=support))["mode"] == "offer"  # alice has been idle longer
    assert not [f for f in await bob.sync() if f.get("session_id") == support]


async def test_claim_stands_when_the_token_service_is_down_and_can_be_retried(replica, available, waiting, nc):
    client = await replica(token_timeout_s=0.3)  # no token service on NATS
    alice = await available(client, "alice")
    sid = await waiting(pin="NOTOK1")
    await alice.expect("offer", session_id=sid)
    await alice.send({"type": "claim", "session_id": sid})
    claimed = await alice.expect("claimed", session_id=sid)
    assert claimed["pin"] == "NOTOK1" and claimed["token"] is None
    assert claimed["token_error"]["code"] == "unavailable"
    await alice.send({"type": "claim", "session_id": sid})  # still hers: asking again retries the token
    assert (await alice.expect("claimed", session_id=sid))["token"] is None


async def test_released_session_gives_capacity_back(replica, available, waiting, events, token_service):
    client = await replica()
    alice = await available(client, "alice")
    first = await waiting()
    await alice.expect("offer", session_id=first)
    await alice.send({"type": "claim", "session_id": first})
    await alice.expect("claimed", session_id=first)
    second = await waiting()
    await events.expect("queued", session_id=second)
    assert not [f for f in await alice.sync() if f["type"] == "offer"]  # full

    await alice.send({"type": "release", "session_id": first})  # done, though the session may go on
    await alice.expect("released", session_id=first)
    await alice.expect("offer", session_id=second)
    await alice.send({"type": "release", "session_id": first})
    assert (await alice.expect("error", session_id=first))["code"] == "not_claimed"

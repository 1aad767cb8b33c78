"""PINs are need-to-know (contract 8): an agent reads a PIN only for a session it claimed.

Every path an agent key can read is walked with distinct PINs per session; the PINs of other agents' sessions
and of unclaimed ones must never appear in any byte the agent receives.
"""

from __future__ import annotations

import json

import pytest
from aiohttp import WSMsgType

from shared.messaging import SessionState

from .conftest import new_session_id

pytestmark = pytest.mark.cluster

WAITING, CREATED = SessionState.WAITING, SessionState.CREATED


async def test_agent_reads_no_pin_but_its_own_claimed_sessions(replica, account, available, session, token_service):
    client = await replica(offer_timeout_s=30.0, queue_modes={"vip": "broadcast"})
    _, alice_key = await account("alice")
    alice = await available(client, "alice", queues=["support", "vip"], capacity=3, api_key=alice_key)
    bob = await available(client, "bob", queues=["vip"], capacity=3)
    pins = {}

    async def publish(queue: str) -> str:
        sid = new_session_id()
        pins[sid] = f"P{len(pins):05d}X"
        await session(sid, WAITING, CREATED, pin=pins[sid], queue=queue)
        return sid

    mine = await publish("support")  # offered to alice, claimed by her
    await alice.expect("offer", session_id=mine)
    await alice.send({"type": "claim", "session_id": mine})
    assert (await alice.expect("claimed", session_id=mine))["pin"] == pins[mine]

    theirs = await publish("vip")  # broadcast to both, bob wins
    await bob.expect("offer", session_id=theirs)
    await bob.send({"type": "claim", "session_id": theirs})
    await bob.expect("claimed", session_id=theirs)
    await alice.expect("offer_revoked", session_id=theirs, reason="taken")
    await alice.send({"type": "claim", "session_id": theirs})  # too late: the refusal carries no PIN
    assert (await alice.expect("error", session_id=theirs))["code"] == "taken"

    unclaimed = await publish("vip")  # offered to both, claimed by nobody
    await alice.expect("offer", session_id=unclaimed)
    await alice.send({"type": "decline", "session_id": unclaimed})
    frames = await alice.sync()

    others = {pins[theirs], pins[unclaimed]}
    for frame in frames:
        assert not others & set(json.dumps(frame).split('"')), frame
        assert pins[mine] not in json.dumps(frame), frame

    # HTTP with the agent's key: a refused claim and every supervisor route show nothing.
    headers = {"Authorization": f"Bearer {alice_key}"}
    refused = await client.post(f"/api/requests/{theirs}/claim", headers=headers)
    assert refused.status == 409
    assert not others & set((await refused.text()).split('"'))
    again = await client.post(f"/api/requests/{mine}/claim", headers=headers)
    assert (await again.json())["pin"] == pins[mine]
    for path in ("/stats", "/events"):
        answer = await client.get(path, headers=headers)
        assert answer.status == 403, path
        assert not set(pins.values()) & set((await answer.text()).split('"'))
    assert (await client.post("/api/tickets", headers=headers)).status == 403
    ws = await client.ws_connect("/ws/dashboard")
    await ws.send_json({"type": "auth", "api_key": headers["Authorization"][7:]})
    assert (await ws.receive_json())["code"] == "role_required"
    assert (await ws.receive()).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)

    # A reloaded console gets its own claimed sessions back, with their PINs, and nothing else.
    await alice.ws.close()
    reloaded = await client.ws_connect("/ws/agent")
    await reloaded.send_json({"type": "auth", "api_key": alice_key})
    ready = await reloaded.receive_json()
    assert ready["type"] == "ready"
    assert ready["sessions"] == [{"session_id": mine, "queue": "support", "pin": pins[mine]}]
    assert not others & set(json.dumps(ready).split('"'))

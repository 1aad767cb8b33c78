"""Two replicas behind no sticky routing behave as one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aiohttp
import pytest

from devstack.servers import free_port
from devstack.stack import wait_until_ready
from shared.messaging import SessionState

from .conftest import SESSION_SECRET, new_session_id

pytestmark = pytest.mark.cluster

WAITING = SessionState.WAITING


async def test_broadcast_simultaneous_claims_have_exactly_one_winner(replica, agent, token_service, waiting):
    one = await replica(default_mode="broadcast")
    two = await replica(default_mode="broadcast")
    agents = [await agent(one, f"one-{i}") for i in range(3)] + [await agent(two, f"two-{i}") for i in range(3)]
    for sock in agents:
        await sock.available()
    sid = await waiting()
    for sock in agents:
        offer = await sock.expect("offer", session_id=sid)
        assert offer["mode"] == "broadcast" and offer["expires_in_s"] is None

    await asyncio.gather(*(sock.send({"type": "claim", "session_id": sid}) for sock in agents))
    answers = [await sock.expect(("claimed", "error"), session_id=sid) for sock in agents]

    winners = [a for a in answers if a["type"] == "claimed"]
    assert len(winners) == 1
    assert sorted(a["code"] for a in answers if a["type"] == "error") == ["taken"] * 5
    assert len(token_service) == 1


async def test_http_claim_answers_409_when_taken(replica, agent, account, token_service, available, waiting):
    client = await replica(default_mode="broadcast")
    alice = await available(client, "alice")
    bob_id, bob_key = await account("bob")
    bob = await agent(client, api_key=bob_key, agent_id=bob_id)
    await bob.available()
    sid = await waiting(pin="HTTP42")
    await alice.expect("offer", session_id=sid)
    await bob.expect("offer", session_id=sid)

    response = await client.post(f"/api/requests/{sid}/claim", headers={"Authorization": f"Bearer {bob_key}"})
    assert response.status == 200
    assert (await response.json())["pin"] == "HTTP42"
    await alice.expect("offer_revoked", session_id=sid, reason="taken")
    await alice.send({"type": "claim", "session_id": sid})
    assert (await alice.expect("error"))["code"] == "taken"

    again = await client.post(f"/api/requests/{sid}/claim", headers={"Authorization": f"Bearer {bob_key}"})
    assert again.status == 200  # the winner may ask again (e.g. for a fresh token)
    alice_key_answer = await client.post(f"/api/requests/{sid}/claim")
    assert alice_key_answer.status == 401


async def test_offer_decided_on_one_replica_reaches_agent_on_the_other(replica, available, waiting):
    one = await replica(offer_timeout_s=10.0)
    two = await replica(offer_timeout_s=10.0)
    bob = await available(two, "bob")
    sid = await waiting()
    await bob.expect("offer", session_id=sid)
    alice = await available(one, "alice")

    await bob.send({"type": "decline", "session_id": sid})  # replica two decides the next offer
    await alice.expect("offer", session_id=sid)


async def test_replica_going_down_mid_offer_loses_no_request(replica, available, waiting):
    one = await replica(offer_timeout_s=10.0)
    two = await replica(offer_timeout_s=10.0)
    alice = await available(one, "alice")
    bob = await available(two, "bob")
    sid = await waiting()
    await alice.expect("offer", session_id=sid)

    # alice's replica shuts down (her console sees the close); her pending offer moves to bob on the other one
    closing = asyncio.create_task(one.close())
    assert (await alice.ws.receive()).type.name in ("CLOSE", "CLOSING", "CLOSED")
    await closing
    await bob.expect("offer", session_id=sid, within=2.0)


async def test_second_console_of_an_agent_replaces_the_first(replica, agent, account):
    one = await replica()
    two = await replica()
    agent_id, api_key = await account("alice")
    first = await agent(one, api_key=api_key, agent_id=agent_id)
    second = await agent(two, api_key=api_key, agent_id=agent_id)
    await first.expect("replaced")
    await second.available()


async def test_offer_timeout_fires_once_with_two_replicas(replica, events, available, waiting):
    one = await replica(offer_timeout_s=0.3)
    two = await replica(offer_timeout_s=0.3)
    alice = await available(one, "alice")
    bob = await available(two, "bob")
    sid = await waiting()

    await alice.expect("offer", session_id=sid)
    await events.expect("offer_timeout", session_id=sid, agent_id=alice.agent_id)
    await bob.expect("offer", session_id=sid)
    await bob.send({"type": "decline", "session_id": sid})
    await events.expect("declined", session_id=sid)  # everything about the timeout was published before this
    later = [events.queue.get_nowait() for _ in range(events.queue.qsize())]
    assert not [e for e in later if e["type"] == "offer_timeout"]
    assert [f["reason"] for f in await alice.sync() if f["type"] == "offer_revoked"] == ["timeout"]


@pytest.fixture(name="process_replica")
async def _process_replica(redis_url, nats_url):
    """A replica in its own process, so a test can kill it outright (SIGKILL: no shutdown code runs)."""
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "NATS_URL": nats_url,
        "SESSION_TOKEN_SECRET": SESSION_SECRET,
        "NOTIFY_PORT": str(port),
        "NOTIFY_OFFER_TIMEOUT_S": "1.0",
        "NOTIFY_PRESENCE_TTL_S": "0.6",
        "NOTIFY_TIMER_POLL_S": "0.05",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "true",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notification_service", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(wait_until_ready, url, lambda: process.returncode is not None, 15)
    yield url, process
    if process.returncode is None:
        process.kill()
    await process.wait()


async def test_replica_killed_mid_offer_loses_no_request(replica, agent, account, session, process_replica):
    url, process = process_replica
    two = await replica(offer_timeout_s=1.0, presence_ttl_s=0.6)
    _, alice_key = await account("alice")
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url.replace("http", "ws") + "/ws/agent")
        await ws.send_json({"type": "auth", "api_key": alice_key})
        assert (await ws.receive_json())["type"] == "ready"
        await ws.send_json({"type": "status", "status": "available", "queues": ["support"]})
        assert (await ws.receive_json())["type"] == "status"
        bob = await agent(two, "bob")
        await bob.available()
        sid = new_session_id()
        await session(sid, WAITING, SessionState.CREATED)
        offer = await ws.receive_json()
        assert offer["type"] == "offer" and offer["session_id"] == sid  # alice, idle longer, has it

        process.kill()  # no goodbye: her socket, presence refresh and timers on that replica just stop
        # The surviving replica fires the shared offer timer and the request moves on to bob.
        await bob.expect("offer", session_id=sid, within=5.0)


async def test_agent_full_after_a_claim_stops_seeing_broadcasts_until_it_has_room(
    replica, available, waiting, session, token_service
):
    client = await replica(default_mode="broadcast")
    alice = await available(client, "alice")
    bob = await available(client, "bob")
    first, second = await waiting(), await waiting()
    for sock in (alice, bob):
        await sock.expect("offer", session_id=first)
        await sock.expect("offer", session_id=second)

    await alice.send({"type": "claim", "session_id": first})
    await alice.expect("claimed", session_id=first)
    await alice.expect("offer_revoked", session_id=second, reason="withdrawn")
    await bob.expect("offer_revoked", session_id=first, reason="taken")

    await session(first, SessionState.ENDED, SessionState.ACTIVE)  # alice has room again
    await alice.expect("offer", session_id=second)

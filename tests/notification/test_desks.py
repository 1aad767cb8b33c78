"""Desks: groups of queues, each in its own slot; an agent serves the queues of one desk."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from notification_service.desks import DESK, DeskMap
from shared.messaging import SessionState

from .conftest import SESSION_SECRET, session_token

pytestmark = pytest.mark.cluster

# "sales" and "care" hash to slots of different masters of a 3-master cluster (4929 and 12180).
DESKS = "sales:sales,renewals;care:support,tech"


def test_desks_setting_maps_queues_and_refuses_what_it_cannot_read(settings):
    desks = settings(desks=DESKS).desk_map
    assert (desks.of("renewals"), desks.of("tech"), desks.of("anything-else")) == ("sales", "care", "default")
    assert desks.names == ["care", "default", "sales"]
    assert settings().desk_map.names == ["default"]  # no setting: every queue in one desk, as before desks

    for bad, reason in [
        ("sales", "is not desk:queue,queue"),
        ("sales:", "lists no queue"),
        ("a:x;a:y", "listed twice"),
        ("a:x;b:x", "in two desks"),
        ("a:bad.queue", "not a queue name"),
        ("{slot}:x", "is not desk:queue,queue"),
    ]:
        with pytest.raises(ValueError, match=reason):
            DeskMap.parse(bad)
        with pytest.raises(ValidationError, match="desks"):
            settings(desks=bad)


def test_a_bad_desks_setting_stops_the_service_naming_it(tmp_path):
    env = {**os.environ, "SESSION_TOKEN_SECRET": SESSION_SECRET, "NOTIFY_DESKS": "sales:x;care:x"}
    result = subprocess.run(
        [sys.executable, "-m", "notification_service"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "NOTIFY_DESKS" in result.stderr and "in two desks" in result.stderr


async def test_two_desks_dispatch_and_claim_each_in_its_own_slot(
    replica, redis, available, agent, waiting, events, token_service, registry_standin
):
    if isinstance(redis, RedisCluster):
        nodes = {redis.get_node_from_key(DESK.base(desk)).name for desk in ("sales", "care")}
        assert len(nodes) == 2  # on a cluster the two desks are served by different masters
    assert key_slot(DESK.base("sales").encode()) != key_slot(DESK.base("care").encode())

    one = await replica(desks=DESKS, offer_timeout_s=10.0)
    two = await replica(desks=DESKS, offer_timeout_s=10.0)
    alice = await available(one, "alice", ["sales", "renewals"])
    bob = await available(two, "bob", ["support", "tech"])
    sale, tech = await waiting(queue="sales"), await waiting(queue="tech")

    await alice.expect("offer", session_id=sale, queue="sales")
    await bob.expect("offer", session_id=tech, queue="tech")
    await alice.send({"type": "claim", "session_id": sale})
    await bob.send({"type": "claim", "session_id": tech})
    assert (await alice.expect("claimed", session_id=sale))["queue"] == "sales"
    assert (await bob.expect("claimed", session_id=tech))["queue"] == "tech"
    renewal = await waiting(queue="renewals")  # alice is full: it waits in the sales desk
    await events.expect("queued", session_id=renewal)
    # Claims are decided in the desk of the claimant: a request of another desk is not found there.
    await bob.send({"type": "claim", "session_id": renewal})
    assert (await bob.expect("error", session_id=renewal))["code"] == "request_not_found"

    for client, sid, state in ((one, sale, "claimed"), (two, tech, "claimed"), (two, renewal, "queued")):
        status = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
        assert (await status.json())["state"] == state
    cancelled = await one.delete(f"/api/requests/{renewal}", params={"token": session_token(renewal)})
    assert cancelled.status == 200 and (await cancelled.json())["state"] == "cancelled"
    assert await redis.zcard(DESK.key(DESK.base("sales"), "q", "renewals")) == 0
    assert await redis.hget(DESK.key(DESK.base("care"), "req", tech), "claimed_by") == bob.agent_id

    # A status naming queues of both desks is refused, naming the field; nothing changes.
    await bob.send({"type": "status", "status": "available", "queues": ["tech", "sales"], "capacity": 2})
    error = await bob.expect("error")
    assert error["code"] == "validation_failed" and error["errors"][0]["property"] == "queues"


async def test_an_agent_moves_to_the_desk_of_its_new_queues(replica, available, agent, waiting, session):
    client = await replica(desks=DESKS, offer_timeout_s=10.0)
    carol = await available(client, "carol", ["sales"])
    sale = await waiting(queue="sales")
    await carol.expect("offer", session_id=sale)

    await carol.available(["support"])  # care desk: the sales offer is withdrawn and she is offered support
    await carol.expect("offer_revoked", session_id=sale, reason="withdrawn")
    help_ = await waiting(queue="support")
    await carol.expect("offer", session_id=help_, queue="support")
    await carol.send({"type": "claim", "session_id": help_})
    await carol.expect("claimed", session_id=help_)

    # Holding a session of the care desk, she may not move back until she releases it.
    await carol.send({"type": "status", "status": "available", "queues": ["sales"], "capacity": 1})
    assert (await carol.expect("error"))["code"] == "desk_busy"
    await carol.send({"type": "release", "session_id": help_})
    await carol.expect("released")
    await carol.available(["sales"])
    await carol.expect("offer", session_id=sale)  # nobody else serves sales: it waited for her


async def test_a_reconnecting_agent_comes_back_to_its_desk(replica, agent, account, waiting, session):
    client = await replica(desks=DESKS, offer_timeout_s=10.0)
    agent_id, api_key = await account("dora")
    first = await agent(client, api_key=api_key, agent_id=agent_id)
    await first.available(["tech"])
    await first.ws.close()
    again = await agent(client, api_key=api_key, agent_id=agent_id)
    sid = await waiting(queue="tech")
    await again.expect("offer", session_id=sid, queue="tech")
    await session(sid, SessionState.ACTIVE, SessionState.WAITING)
    await again.expect("offer_revoked", session_id=sid)

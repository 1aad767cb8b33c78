"""Events of one session are applied in the session's order (its version), once, whatever order they arrive in."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict

import pytest

from shared.messaging import SessionState

from .conftest import new_session_id, publish_event, session_event, session_token

pytestmark = pytest.mark.cluster

WAITING, ACTIVE, CREATED = SessionState.WAITING, SessionState.ACTIVE, SessionState.CREATED


class Acks:
    """Counts the notification consumer's JetStream acks (a core subscription on the ack subjects)."""

    def __init__(self) -> None:
        self.count = 0
        self.naks = 0
        self.reached = asyncio.Event()
        self.target = 0

    def wait_for(self, target: int) -> None:
        self.target = target

    async def keep(self, msg) -> None:
        if msg.data.startswith(b"-NAK"):
            self.naks += 1
            return
        self.count += 1
        if self.target and self.count >= self.target:
            self.reached.set()


async def test_joined_and_flapping_sessions_are_never_offered_after_the_join(
    replica, agent, nc, events, redis, registry_standin
):
    """200 sessions: waiting, agent joined, agent flapped (left + joined in one batch); shuffled, two replicas."""
    # The consoles read nothing while the batch is applied: a long heartbeat keeps their sockets open meanwhile.
    one = await replica(default_mode="broadcast", heartbeat_s=60.0)
    two = await replica(default_mode="broadcast", heartbeat_s=60.0)
    alice, bob = await agent(one, "alice"), await agent(two, "bob")
    for sock in (alice, bob):
        await sock.available()
    acks = Acks()
    sub = await nc.subscribe("$JS.ACK.COBROWSE.>", cb=acks.keep)

    batch = []
    sessions = [new_session_id() for _ in range(200)]
    for sid in sessions:
        at = time.time()  # one beacon batch: updated_at cannot tell these events apart, the version does
        batch += [
            session_event(sid, WAITING, CREATED, "pin_assigned", version=1, updated_at=at),
            session_event(sid, ACTIVE, WAITING, "agent_joined", version=2, updated_at=at),
            session_event(sid, WAITING, ACTIVE, "agent_left", version=3, updated_at=at),
            session_event(sid, ACTIVE, WAITING, "agent_joined", version=4, updated_at=at),
        ]
    random.Random(10).shuffle(batch)
    acks.wait_for(len(batch))
    js = nc.jetstream()
    await asyncio.gather(*(publish_event(js, event) for event in batch))
    async with asyncio.timeout(30):
        await acks.reached.wait()
    await sub.unsubscribe()

    # Nothing waits: every session's last version (an agent joined) won, whichever event came last.
    for sid in sessions:
        status = await one.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
        if status.status == 200:
            assert (await status.json())["state"] == "joined"
        else:
            assert status.status == 404  # the join was applied first: no request was ever created
    assert await redis.zcard("notify:{d:default}:q:support") == 0
    # What was offered was withdrawn, and the last word on each session is that it left the queue.
    for sock in (alice, bob):
        shown: dict[str, int] = defaultdict(int)
        for frame in await sock.sync():
            if frame["type"] == "offer":
                shown[frame["session_id"]] += 1
            elif frame["type"] == "offer_revoked":
                shown[frame["session_id"]] -= 1
        assert not {sid: n for sid, n in shown.items() if n}
    # Every request that was queued left again (replicas publish concurrently, so only counts are compared).
    balance: dict[str, int] = defaultdict(int)
    while not events.queue.empty():
        event = events.queue.get_nowait()
        if event.get("session_id") in sessions and event["type"] in ("queued", "left"):
            balance[event["session_id"]] += 1 if event["type"] == "queued" else -1
    assert not {sid: n for sid, n in balance.items() if n}


async def test_an_event_older_than_a_join_never_creates_a_request(replica, session, events, available, nc):
    client = await replica(offer_timeout_s=10.0)
    alice = await available(client, "alice")
    sid, control = new_session_id(), new_session_id()
    acks = Acks()
    acks.wait_for(1)
    sub = await nc.subscribe("$JS.ACK.COBROWSE.>", cb=acks.keep)
    await session(sid, ACTIVE, WAITING, "agent_joined", version=3)  # applied first: leaves a tombstone
    async with asyncio.timeout(3):
        await acks.reached.wait()
    await sub.unsubscribe()
    await session(sid, WAITING, CREATED, "pin_assigned", version=2)
    await session(control, WAITING, CREATED, version=1)
    await alice.expect("offer", session_id=control)
    assert not [f for f in await alice.sync() if f.get("session_id") == sid]
    missing = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
    assert missing.status == 404

    await session(sid, WAITING, ACTIVE, "agent_left", version=4)  # newer: the agent really left
    await events.expect("queued", session_id=sid)


async def _applied(nc, js, event) -> None:
    """Publish one session event and wait until a replica acked it (its change is in Redis)."""
    acks = Acks()
    acks.wait_for(1)
    sub = await nc.subscribe("$JS.ACK.COBROWSE.>", cb=acks.keep)
    await publish_event(js, event)
    async with asyncio.timeout(3):
        await acks.reached.wait()
    await sub.unsubscribe()


async def test_a_redelivered_event_is_applied_once(replica, nc, events):
    client = await replica(offer_timeout_s=10.0)
    sid = new_session_id()
    js = nc.jetstream()
    joined = session_event(sid, ACTIVE, WAITING, "agent_joined", version=2)
    await _applied(nc, js, session_event(sid, WAITING, CREATED, version=1))
    await _applied(nc, js, joined)
    await _applied(nc, js, session_event(sid, WAITING, ACTIVE, "agent_left", version=3))
    await events.expect("queued", session_id=sid)
    await events.expect("left", session_id=sid)
    await events.expect("queued", session_id=sid)  # the agent left: a new request
    # The same `agent_joined` once more (a new message id, as a redelivery after a lost ack would be): stale.
    await _applied(nc, js, joined.model_copy(update={"event_id": "again-" + joined.event_id}))
    status = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
    assert (await status.json())["state"] == "queued"


async def test_offer_timeout_is_published_before_the_next_offer(replica, events, available, waiting):
    client = await replica(offer_timeout_s=0.3)
    alice = await available(client, "alice")
    sid = await waiting()
    await alice.expect("offer", session_id=sid)
    bob = await available(client, "bob")
    order = []
    async with asyncio.timeout(5):
        while ("offered", bob.agent_id) not in order:
            event = await events.queue.get()
            if event["type"] in ("offer_timeout", "offered") and event.get("session_id") == sid:
                order.append((event["type"], event["agent_id"]))
    assert order == [("offered", alice.agent_id), ("offer_timeout", alice.agent_id), ("offered", bob.agent_id)]

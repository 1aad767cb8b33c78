"""NATS down during claims and cancels: answers are not 5xx (503 where NATS is truly needed), and every
committed claim's event reaches JetStream once NATS is back, exactly once (the notification outbox)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from devstack.servers import ServerProcess, start_nats
from notification_service.keys import OUTBOX
from notification_service.outbox import Outbox
from shared.messaging import QueueEvent, SessionState, new_event_id, queue_subject

from .conftest import new_session_id, publish_event, session_event, session_token

OUTAGE_S = 2.0


@pytest.fixture(name="own_nats")
def _own_nats(tmp_path) -> Any:
    """A NATS server of this test alone, so it can be stopped and started again on the same port and data."""
    servers: list[ServerProcess] = [start_nats(tmp_path / "nats")]
    yield servers
    servers[-1].stop()


async def _connect(url: str) -> nats.aio.client.Client:
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)


async def _stored(nc: nats.aio.client.Client, subject: str, count: int) -> list[str]:
    """The session ids of the events stored on ``subject``, once ``count`` of them are there (and any extra)."""
    config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    seen: list[str] = []
    async with asyncio.timeout(15):
        while True:  # the client may still be reconnecting to the restarted server
            try:
                sub = await nc.jetstream().pull_subscribe(subject, durable=None, config=config)
                break
            except TimeoutError:
                continue
        while len(seen) < count:
            with contextlib.suppress(nats.errors.TimeoutError):
                seen += [json.loads(msg.data)["session_id"] for msg in await sub.fetch(1, timeout=1.0)]
    with contextlib.suppress(nats.errors.TimeoutError):  # a duplicate would be stored right behind
        seen += [json.loads(msg.data)["session_id"] for msg in await sub.fetch(1, timeout=0.5)]
    return seen


async def _waiting_sessions(nc: nats.aio.client.Client, count: int) -> list[str]:
    js = nc.jetstream()
    sids = [new_session_id() for _ in range(count)]
    for sid in sids:
        await publish_event(js, session_event(sid, SessionState.WAITING, SessionState.CREATED, version=1))
    return sids


@pytest.mark.timeout(60)  # two NATS restarts' worth of JetStream recovery on a busy machine
async def test_claims_and_cancels_while_nats_is_down(own_nats, replica, agent, account, tmp_path):
    server = own_nats[0]
    client = await replica(
        nats_url=server.url,
        default_mode="broadcast",
        token_timeout_s=0.3,
        registry_timeout_s=0.3,
        outbox_poll_s=0.1,
    )
    nc = await _connect(server.url)
    agent_id, api_key = await account("alice")
    alice = await agent(client, api_key=api_key, agent_id=agent_id)
    await alice.available(capacity=40)
    sids = await _waiting_sessions(nc, 30)
    for sid in sids:
        await alice.expect("offer", session_id=sid)
    to_claim, to_cancel = sids[:20], sids[20:]

    await asyncio.to_thread(server.stop)  # in a thread: the replica's loop keeps running meanwhile
    async with asyncio.timeout(10):
        auth = {"Authorization": f"Bearer {api_key}"}
        claims = [client.post(f"/api/requests/{sid}/claim", headers=auth) for sid in to_claim]
        cancels = [
            client.delete(f"/api/requests/{sid}", headers={"X-Session-Token": session_token(sid)}) for sid in to_cancel
        ]
        answers = await asyncio.gather(*claims, *cancels)
    claimed = [await r.json() for r in answers[: len(to_claim)]]
    assert [r.status for r in answers[: len(to_claim)]] == [200] * len(to_claim)
    assert all(c["pin"] and c["token_error"]["code"] == "unavailable" for c in claimed)
    # Cancel must end the registry session first: with NATS down it is refused whole, nothing changed.
    assert [r.status for r in answers[len(to_claim) :]] == [503] * len(to_cancel)
    for sid in to_cancel:
        status = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
        assert (await status.json())["state"] == "queued"

    await asyncio.sleep(OUTAGE_S)  # the outage itself, not a wait for a result
    own_nats.append(await asyncio.to_thread(start_nats, tmp_path / "nats", server.port))
    seen = await _stored(nc, "cobrowse.queue.support.claimed", len(to_claim))
    assert sorted(seen) == sorted(to_claim)  # each once
    await nc.close()  # drain waits out the pull subscription


@pytest.mark.timeout(60)
async def test_an_event_jetstream_refuses_waits_in_the_outbox(own_nats, replica, redis, tmp_path):
    """A direct publish that fails (NATS down) is kept and published once NATS is back, not raised to the caller."""
    server = own_nats[0]
    client = await replica(nats_url=server.url, outbox_poll_s=0.1)
    outbox = client.server.app[OUTBOX]
    await asyncio.to_thread(server.stop)
    event = QueueEvent(event_id=new_event_id(), type="offered", queue="support", session_id="s1")
    await outbox.publish("default", queue_subject("support", "offered"), event.encode(), event.event_id)
    assert await redis.xlen(Outbox.key("default")) == 1

    own_nats.append(await asyncio.to_thread(start_nats, tmp_path / "nats", server.port))
    nc = await _connect(server.url)
    assert await _stored(nc, "cobrowse.queue.support.offered", 1) == ["s1"]
    await nc.close()  # drain waits out the pull subscription
    assert await redis.xlen(Outbox.key("default")) == 0

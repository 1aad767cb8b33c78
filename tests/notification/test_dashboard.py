"""Supervisor streams: snapshot then live tail, resume without gap or duplicate, slow consumers, tickets."""

from __future__ import annotations

import asyncio
import json

from notification_service.keys import FANOUT
from shared.accounts import Role
from shared.messaging import STREAM, SessionState

from .conftest import new_session_id

WAITING, CREATED = SessionState.WAITING, SessionState.CREATED


class SSE:
    """Reads one Server-Sent Events response frame by frame."""

    def __init__(self, response) -> None:
        self.response = response

    async def next(self) -> tuple[int | None, dict]:
        event_id, data = None, None
        while True:
            line = (await self.response.content.readline()).decode()
            if not line:
                raise EOFError("stream ended")
            line = line.rstrip("\n")
            if not line:
                if data is not None:
                    return event_id, json.loads(data)
                continue
            name, _, value = line.partition(": ")
            if name == "id":
                event_id = int(value)
            elif name == "data":
                data = value


async def _supervisor(account):
    _, key = await account("sup", role=Role.SUPERVISOR)
    return {"Authorization": f"Bearer {key}"}


async def _last_seq(nc) -> int:
    return (await nc.jetstream().stream_info(STREAM)).state.last_seq


async def test_new_client_gets_snapshot_then_live_events(replica, account, session, events, waiting):
    client = await replica()
    sid = await waiting()
    await events.expect("no_agents")
    headers = await _supervisor(account)

    stream = SSE(await client.get("/events", headers=headers))
    snap_id, snapshot = await stream.next()
    assert snapshot["type"] == "snapshot" and snapshot["id"] == snap_id
    assert [s["session_id"] for s in snapshot["sessions"]] == [sid]
    assert {q["queue"]: q["waiting"] for q in snapshot["queues"]}["support"] == 1

    other = new_session_id()
    await session(other, WAITING, CREATED)
    event_id, frame = await stream.next()
    assert frame["type"] == "event" and frame["kind"] == "session" and frame["id"] == event_id
    assert event_id == snap_id + 1
    assert frame["event"]["session"]["session_id"] == other


async def test_resume_with_last_event_id_replays_exactly_what_was_missed(replica, account, session, events, nc):
    one, two = await replica(), await replica()
    headers = await _supervisor(account)
    first = SSE(await one.get("/events", headers=headers))
    seen, _ = await first.next()
    first.response.close()

    for _ in range(3):  # missed while away: session, queue and "no agents" events
        sid = new_session_id()
        await session(sid, WAITING, CREATED)
        await events.expect("queued", session_id=sid)
    missed_until = await _last_seq(nc)
    assert missed_until > seen + 3

    resumed = SSE(await two.get("/events", headers={**headers, "Last-Event-ID": str(seen)}))
    ids = [(await resumed.next())[0] for _ in range(missed_until - seen)]
    assert ids == list(range(seen + 1, missed_until + 1))  # no gap, no duplicate, no snapshot
    await session(new_session_id(), WAITING, CREATED)
    assert (await resumed.next())[0] == missed_until + 1


async def test_filters_select_queue_and_type(replica, account, session, events):
    client = await replica()
    headers = await _supervisor(account)
    stream = SSE(await client.get("/events", headers=headers, params={"queue": "billing", "type": "queued"}))
    await stream.next()  # snapshot
    await session(new_session_id(), WAITING, CREATED, queue="support")
    billing = new_session_id()
    await session(billing, WAITING, CREATED, queue="billing")
    _, frame = await stream.next()
    assert (frame["kind"], frame["event"]["type"], frame["event"]["session_id"]) == ("queue", "queued", billing)


async def test_slow_consumer_is_dropped_and_resumes(replica, account, session, nc):
    client = await replica(dashboard_buffer=8, dashboard_drop_grace_s=10.0)
    fanout = client.server.app[FANOUT]
    headers = await _supervisor(account)
    ws = await client.ws_connect("/ws/dashboard")
    await ws.send_json({"type": "auth", "api_key": headers["Authorization"][7:]})
    snapshot = await ws.receive_json()
    assert snapshot["type"] == "snapshot"
    watcher = next(iter(fanout.clients))

    # The test reads nothing until the service gives up on it; big events fill the socket buffers quickly.
    published = 0
    while watcher.dropped is None:
        assert published < 3000, "never dropped"
        await session(new_session_id(), CREATED, data_size=20000)
        published += 1
    last = snapshot["id"]
    while True:
        frame = await ws.receive_json()
        if frame["type"] == "dropped":
            break
        assert frame["id"] == last + 1
        last = frame["id"]
    assert frame == {"type": "dropped", "reason": "slow_consumer", "last_event_id": last, "last_id": last}

    resumed = await client.ws_connect("/ws/dashboard", params={"last_event_id": str(last)})
    await resumed.send_json({"type": "auth", "api_key": headers["Authorization"][7:]})
    end = await _last_seq(nc)
    for expected in range(last + 1, end + 1):
        assert (await resumed.receive_json())["id"] == expected


async def test_eventsource_ticket_works_once(replica, account):
    client = await replica()
    headers = await _supervisor(account)
    issued = await client.post("/api/tickets", headers=headers)
    assert issued.status == 201
    ticket = (await issued.json())["ticket"]
    stream = SSE(await client.get("/events", params={"ticket": ticket}))
    assert (await stream.next())[1]["type"] == "snapshot"
    again = await client.get("/events", params={"ticket": ticket})
    assert again.status == 401 and (await again.json())["error"]["code"] == "invalid_ticket"


async def test_streams_are_for_supervisors(replica, account):
    client = await replica()
    _, agent_key = await account("agent")
    assert (await client.get("/events")).status == 401
    assert (await client.get("/events", headers={"Authorization": f"Bearer {agent_key}"})).status == 403
    assert (await client.post("/api/tickets", headers={"Authorization": f"Bearer {agent_key}"})).status == 403
    bad = await client.get("/events", headers={"Authorization": "Bearer cbk_x", "Last-Event-ID": "x"})
    assert bad.status in (400, 401)


async def test_stats_count_the_day(replica, account, events, token_service, available, waiting):
    client = await replica(offer_timeout_s=10.0)
    alice = await available(client, "alice")
    sid = await waiting()
    await alice.expect("offer", session_id=sid)
    await alice.send({"type": "claim", "session_id": sid})
    await alice.expect("claimed")
    await events.expect("claimed", session_id=sid)

    response = await client.get("/stats", headers=await _supervisor(account))
    assert response.status == 200
    body = await response.json()
    assert body["since"] == "00:00 UTC"
    support = {q["queue"]: q for q in body["queues"]}["support"]
    assert support["waiting"] == 0
    assert support["agents"] == {"available": 0, "busy": 1, "away": 0, "offline": 0}
    assert support["today"]["offered"] == 1 and support["today"]["claimed"] == 1
    assert support["today"]["wait_p50_s"] is not None
    assert (await client.get("/stats")).status == 401


async def test_dashboard_websocket_takes_bearer_header_or_auth_frame(replica, account, events, waiting):
    client = await replica()
    headers = await _supervisor(account)
    by_header = await client.ws_connect("/ws/dashboard", headers=headers)
    assert (await by_header.receive_json())["type"] == "snapshot"
    by_frame = await client.ws_connect("/ws/dashboard", params={"type": "queued"})
    await by_frame.send_json({"type": "auth", "api_key": headers["Authorization"][7:]})
    assert (await by_frame.receive_json())["type"] == "snapshot"
    await by_frame.send_str("hello")
    assert (await by_frame.receive_json())["code"] == "read_only"

    sid = await waiting()
    assert (await by_header.receive_json())["kind"] == "session"
    frame = await by_frame.receive_json()
    assert (frame["kind"], frame["event"]["type"], frame["event"]["session_id"]) == ("queue", "queued", sid)
    refused = await client.get("/ws/dashboard", headers={"Authorization": "Bearer cbk_nope"})
    assert refused.status == 401


async def test_queue_gauges_reach_prometheus(replica, events, waiting):
    client = await replica(metrics_refresh_s=0.05)
    sid = await waiting(queue="gauged")
    await events.expect("queued", session_id=sid)
    async with asyncio.timeout(3):
        while True:  # the gauges are refreshed in the background; each scrape is a fresh look
            text = await (await client.get("/metrics")).text()
            if 'notify_queue_waiting{queue="gauged"} 1.0' in text:
                break
    assert 'notify_queue_agents{queue="gauged",status="available"} 0.0' in text

"""2,000 concurrent requests on each Redis-backed route of each service, and 2,000 agent sockets opened and closed.

Every answer must be a success, a 429, or a 503 with ``Retry-After``: never a 500, never a 503 without a retry hint.
The services run with their default pool sizes, so the bursts overflow the Redis pools and the pools make requests
wait (``REDIS_POOL_TIMEOUT_S``) rather than fail.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError

from shared.accounts import Role
from shared.messaging import AGENT_EVENTS

from .conftest import BURST, Answer, Desk, answer, burst

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _event(name: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "name": name, "ts": int(time.time() * 1000), "seq": 1, "payload": payload or {}}


async def test_token_routes_hold_a_burst(desk: Desk) -> None:
    async def start(i: int) -> Answer:
        async with desk.http.post(f"{desk.token}/api/customer/start", json={"userName": f"c{i}"}) as response:
            return answer(response)

    async def customer_token(i: int) -> Answer:
        async with desk.http.post(f"{desk.token}/", json={"role": 1}) as response:
            return answer(response)

    customer = await desk.start_customer()
    async with desk.http.post(
        f"{desk.registry}/beacons",
        json={
            "session_id": customer["session_id"],
            "token": customer["session_token"],
            "events": [_event("pincode_updated", {"pinCode": "BURST1"})],
        },
    ) as response:
        assert response.status == 202, await response.text()
    _, agent_key = await desk.account()
    auth = {"Authorization": f"Bearer {agent_key}"}

    async def connect(i: int) -> Answer:
        async with desk.http.post(f"{desk.token}/api/agent/connect", json={"pin": "burst1"}, headers=auth) as response:
            return answer(response)

    for send in (start, customer_token, connect):
        print(send.__name__, await burst(BURST, send))


async def test_registry_routes_hold_a_burst(desk: Desk) -> None:
    sessions = [await desk.start_customer() for _ in range(20)]
    _, supervisor_key = await desk.account(Role.SUPERVISOR, "sup")

    async def beacon(i: int) -> Answer:
        session = sessions[i % len(sessions)]
        body = {"session_id": session["session_id"], "token": session["session_token"], "events": [_event("heartbeat")]}
        async with desk.http.post(f"{desk.registry}/beacons", json=body) as response:
            return answer(response)

    async def read(i: int) -> Answer:
        url = f"{desk.registry}/sessions/{sessions[i % len(sessions)]['session_id']}"
        async with desk.http.get(url, headers={"Authorization": f"Bearer {supervisor_key}"}) as response:
            return answer(response)

    for send in (beacon, read):
        print(send.__name__, await burst(BURST, send))


async def test_notification_routes_hold_a_burst(desk: Desk) -> None:
    sessions = [await desk.start_customer() for _ in range(20)]
    for i, session in enumerate(sessions):  # a PIN puts the request in the queue
        events = [_event("pincode_updated", {"pinCode": f"{900100 + i}"})]
        body = {"session_id": session["session_id"], "token": session["session_token"], "events": events}
        async with desk.http.post(f"{desk.registry}/beacons", json=body) as response:
            assert response.status == 202, await response.text()

    async def status(i: int) -> Answer:
        session = sessions[i % len(sessions)]
        headers = {"X-Session-Token": session["session_token"]}
        async with desk.http.get(f"{desk.notification}/api/requests/{session['session_id']}", headers=headers) as r:
            return answer(r)

    # The request reaches the notification service through the registry's outbox and JetStream: the service answers
    # 404 until then, and offers no event to await, so ask until it knows every session (each try is a round trip).
    async with asyncio.timeout(10):
        for i in range(len(sessions)):
            while (await status(i))[0] == 404:
                pass
    print("status", await burst(BURST, status))


async def _agent_socket_burst(desk: Desk, api_key: str) -> Counter[int]:
    async def connect(i: int) -> Answer:
        try:
            ws = await desk.http.ws_connect(f"{desk.notification}/ws/agent")
        except WSServerHandshakeError as exc:  # refused before the upgrade: its answer must be acceptable too
            return exc.status, dict(exc.headers or {})
        await ws.send_json({"type": "auth", "api_key": api_key})
        first = await ws.receive(timeout=30)
        await ws.close()
        frame = json.loads(first.data) if first.type == WSMsgType.TEXT else {}
        if frame.get("type") == "ready":
            return 200, {}
        # An outage during auth is an error frame saying so (the socket's 503); anything else is not acceptable.
        return (503, {"Retry-After": "frame"}) if frame.get("code") == "unavailable" else (500, {"frame": str(frame)})

    statuses = await burst(BURST, connect)
    print("agent sockets", statuses)
    return statuses


async def test_two_thousand_agent_sockets_open_and_close_and_each_disconnect_is_published(desk: Desk, nc) -> None:
    _, api_key = await desk.account()
    disconnects: set[str] = set()
    expected = BURST
    all_published = asyncio.Event()

    async def on_event(msg: Any) -> None:
        if msg.subject.endswith(".disconnected"):
            disconnects.add(json.loads(msg.data)["event_id"])  # the outbox may deliver twice: count events
            if len(disconnects) >= expected:
                all_published.set()

    sub = await nc.subscribe(AGENT_EVENTS, cb=on_event)
    try:
        expected = (await _agent_socket_burst(desk, api_key))[200]
        if len(disconnects) < expected:
            await asyncio.wait_for(all_published.wait(), 20)
    except TimeoutError:
        # Known (notification, notify-sockets): some clean-ups of a saturated process retry past this deadline.
        pytest.xfail(f"{expected - len(disconnects)} of {expected} agent disconnects unpublished 20 s after the burst")
    finally:
        await sub.unsubscribe()

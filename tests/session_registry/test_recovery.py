"""No accepted beacon and no timeout is lost when NATS goes away or a registry process is killed.

These tests run their own nats-server (JetStream on disk), so they can stop and restart it on the same port.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nats
import pytest

from devstack.servers import free_port, start_redis
from devstack.stack import wait_until_ready
from shared.messaging import SESSION_EVENTS, SessionState, Source
from shared.session_tokens import sign_session_token

from .conftest import BASE, SESSION_SECRET, EventLog, OwnNats, ev, open_session


@pytest.fixture(name="watch")
async def _watch(own_nats: OwnNats) -> AsyncIterator:
    """``await watch()`` connects to the private server and collects every stored session event from the start."""
    clients: list[nats.aio.client.Client] = []

    async def connect() -> EventLog:
        nc = await nats.connect(own_nats.url, max_reconnect_attempts=0)
        clients.append(nc)
        log = EventLog()
        await nc.jetstream().subscribe(SESSION_EVENTS, cb=log.add, ordered_consumer=True)
        return log

    yield connect
    for nc in clients:
        await nc.close()


@pytest.mark.cluster
async def test_beacons_accepted_while_nats_is_down_are_published_after_it_returns(
    own_nats: OwnNats, start_registry, watch
) -> None:
    registry = await start_registry(nats_url=own_nats.url)
    nc = await nats.connect(own_nats.url, max_reconnect_attempts=0)
    session = await open_session(nc, registry)
    await nc.close()
    await session.beacon(ev("pincode_updated", {"pinCode": "310001"}))
    await (await watch()).wait(session.id, "pin_assigned")

    own_nats.stop()
    assert (await session.beacon(ev("agent_joined"), ev("session_ended")))["accepted"] == 2
    own_nats.start()

    log = await watch()
    await log.wait(session.id, "ended")
    assert [e.type for e in log.of(session.id)] == ["created", "pin_assigned", "agent_joined", "ended"]
    assert len(set(log.msg_ids)) == len(log.msg_ids)


def spawn_registry(redis_url: str, nats_url: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "NATS_URL": nats_url,
        "REGISTRY_PORT": str(port),
        "LOG_JSON": "true",
        **{key if key.isupper() else f"REGISTRY_{key.upper()}": str(value) for key, value in BASE.items()},
        "REGISTRY_AGENT_WAIT_TIMEOUT_S": "1.0",
    }
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "session_registry"], env=env, stdout=log, stderr=log)


@pytest.mark.slow
@pytest.mark.cluster
async def test_a_killed_registry_loses_no_accepted_event_and_no_timeout(
    own_nats: OwnNats, redis_url: str, start_registry, watch, tmp_path: Path
) -> None:
    port = free_port()
    process = spawn_registry(redis_url, own_nats.url, port, tmp_path / "registry.log")
    try:
        await asyncio.to_thread(wait_until_ready, f"http://127.0.0.1:{port}", lambda: process.poll() is not None, 20)
        nc = await nats.connect(own_nats.url, max_reconnect_attempts=0)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            session = await open_session(nc, http)  # type: ignore[arg-type]
            await nc.close()
            await session.beacon(ev("pincode_updated", {"pinCode": "320001"}), ev("agent_joined"))
            own_nats.stop()  # from here on the killed process can only write to its Redis outbox
            await session.beacon(ev("session_reconnecting"))
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    own_nats.start()
    await start_registry(nats_url=own_nats.url, agent_wait_timeout_s=1.0)
    log = await watch()
    (ended,) = await log.wait(session.id, "ended", within_s=10)
    assert ended.source is Source.TIMER and ended.session.ended_reason == "agent_wait_timeout"
    assert ended.prev_state is SessionState.RECONNECTING
    assert [e.type for e in log.of(session.id)] == ["created", "pin_assigned", "agent_joined", "reconnecting", "ended"]


async def test_redis_down_is_a_503_not_a_500(start_registry, tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    try:
        registry = await start_registry(redis_url=server.url)
        server.stop()
        token = sign_session_token(SESSION_SECRET.encode(), "a" * 32)
        response = await registry.post(
            "/beacons", json={"session_id": "a" * 32, "token": token, "event": ev("heartbeat")}
        )
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "unavailable"
    finally:
        server.stop()

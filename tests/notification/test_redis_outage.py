"""Redis briefly unreachable: background work (timer loop, session consumer) waits and carries on, never dies."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from devstack.servers import ServerProcess, start_redis
from shared.accounts import AccountStore, Role
from shared.messaging import SessionState

from .conftest import new_session_id

OUTAGE_S = 1.5


@pytest.fixture(name="own_redis")
def _own_redis(tmp_path):
    """A Redis of this test alone, so it can be stopped and started again on the same port."""
    servers: list[ServerProcess] = [start_redis(tmp_path / "redis", persist=True)]
    yield servers
    servers[-1].stop()


async def test_timers_and_session_events_survive_a_redis_outage(own_redis, replica, session, events, agent, tmp_path):
    """``own_redis`` comes first: it stops after the replica has closed."""
    server = own_redis[0]
    client = await replica(redis_url=server.url, offer_timeout_s=2.5)
    redis = Redis.from_url(server.url, decode_responses=True)
    account, api_key = await AccountStore(redis).create("alice", Role.AGENT)
    await redis.aclose()
    alice = await agent(client, api_key=api_key, agent_id=account.id)
    await alice.available()
    first = new_session_id()
    await session(first, SessionState.WAITING, SessionState.CREATED)
    await alice.expect("offer", session_id=first)

    with capture_logs() as logs:
        await asyncio.to_thread(server.stop)
        second = new_session_id()
        await session(second, SessionState.WAITING, SessionState.CREATED)  # arrives while Redis is down
        await asyncio.sleep(OUTAGE_S)  # the outage itself, not a wait for a result
        own_redis.append(await asyncio.to_thread(start_redis, tmp_path / "redis", server.port, persist=True))
        # The event that came during the outage is applied once Redis is back (nak'ed, redelivered), and the
        # timer loop is alive: alice's offer, made before the outage, times out.
        expected = {("queued", second), ("offer_timeout", first)}
        async with asyncio.timeout(10):
            while expected:
                event = await events.queue.get()
                expected.discard((event["type"], event.get("session_id")))
    kinds = {entry["event"] for entry in logs}
    assert "session_event_retry" in kinds or "timer_loop_failed" in kinds
    assert not [e for e in logs if e["log_level"] == "error"]

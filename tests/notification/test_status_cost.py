"""A customer's status costs the same Redis work with 0 or 2,000 agents (a maintained per-queue count), and a
dispatch the same with 10 or 1,000 available agents (the free index: the longest idle agent with room first)."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest

from notification_service.desks import DESK, DeskMap
from notification_service.settings import Settings
from notification_service.stats import _agent_counts, queue_overview
from notification_service.store import Store
from shared.messaging import SessionState

from .conftest import new_session_id, session_token, view

WAITING = SessionState.WAITING

# Connection bookkeeping of the client library, not work of the status path.
NOT_WORK = ("cmdstat_client|", "cmdstat_hello", "cmdstat_info")


async def _commands(redis) -> int:
    stats = await redis.info("commandstats")
    return sum(row["calls"] for name, row in stats.items() if not name.startswith(NOT_WORK))


async def _status_cost(redis, client, sid) -> tuple[int, dict]:
    """Commands one status request runs: the least of three, since a background loop's work only adds to it."""
    costs = []
    for _ in range(3):
        before = await _commands(redis)
        response = await client.get(f"/api/requests/{sid}", params={"token": session_token(sid)})
        assert response.status == 200
        body = await response.json()
        costs.append(await _commands(redis) - before - 1)  # the INFO of `before` counts itself
    return min(costs), body


async def test_status_costs_the_same_with_two_thousand_agents(replica, redis, waiting, events):
    # Background loops are idle during the measurement (they would add their own commands).
    client = await replica(timer_poll_s=60, metrics_refresh_s=60, presence_ttl_s=600, outbox_poll_s=60)
    sid = await waiting()
    await events.expect("queued", session_id=sid)
    await _status_cost(redis, client, sid)  # loads the script
    alone, body = await _status_cost(redis, client, sid)
    assert body["agents_available"] == 0

    store = Store(redis, DeskMap({}), retention_s=3600, stats_timezone=datetime.UTC)
    for start in range(0, 2000, 50):
        agents = [f"agent-{i}" for i in range(start, start + 50)]
        await asyncio.gather(*(store.connect("default", a, f"conn-{a}", a, 600) for a in agents))
        await asyncio.gather(*(store.set_status("default", a, "available", ["support", "other"], 1) for a in agents))

    crowded, body = await _status_cost(redis, client, sid)
    assert body["agents_available"] == 2000
    assert crowded == alone


async def test_no_estimated_wait_while_nobody_serves_the_queue(replica, redis, waiting, events, available):
    client = await replica(offer_timeout_s=10.0)
    await redis.lpush("notify:{d:default}:recent:support", 30.0, 60.0)  # claims were made earlier today
    sid = await waiting()
    await events.expect("queued", session_id=sid)
    _, body = await _status_cost(redis, client, sid)
    assert body["no_agents"] is True and body["estimated_wait_s"] is None

    alice = await available(client, "alice")
    await alice.expect("offer", session_id=sid)
    _, body = await _status_cost(redis, client, sid)
    assert body["agents_available"] == 1 and body["estimated_wait_s"] == 45.0

    await alice.send({"type": "status", "status": "away", "queues": ["support"], "capacity": 1})
    await alice.expect("status")
    _, body = await _status_cost(redis, client, sid)
    assert body["agents_available"] == 0 and body["estimated_wait_s"] is None


async def test_agent_whose_presence_lapsed_leaves_the_available_count(replica, redis, waiting, events, available):
    client = await replica(offer_timeout_s=10.0)
    alice = await available(client, "alice")
    sid = await waiting()
    await alice.expect("offer", session_id=sid)
    await redis.delete(f"notify:{{d:default}}:conn:{alice.agent_id}")  # as when its replica died and the key expired

    store = Store(redis, DeskMap({}), retention_s=3600, stats_timezone=datetime.UTC)
    assert await store.reconcile_available("support") == 1  # what the gauge loop runs for every queue
    _, body = await _status_cost(redis, client, sid)
    assert body["agents_available"] == 0 and body["no_agents"] is True and body["estimated_wait_s"] is None


async def _available_agents(store: Store, queue: str, count: int) -> None:
    for start in range(0, count, 50):
        agents = [f"{queue}-{i}" for i in range(start, min(start + 50, count))]
        await asyncio.gather(*(store.connect("default", a, f"conn-{a}", a, 600) for a in agents))
        await asyncio.gather(*(store.set_status("default", a, "available", [queue], 1) for a in agents))


async def _offer_cost(store: Store, redis, queue: str) -> tuple[int, str]:
    """Redis commands of a new request's script (dispatch included), and the agent it was offered to."""
    free = DESK.key(DESK.base("default"), "free", queue)
    longest_idle = (await redis.zrange(free, 0, 0))[0]
    before = await _commands(redis)
    waiting = view(new_session_id(), SessionState.WAITING, queue=queue)
    outcome = await store.session_event(waiting, "created", 60, "offer", 10)
    cost = await _commands(redis) - before - 1
    assert outcome.dispatched is not None and len(outcome.dispatched.shown) == 1
    offered = outcome.dispatched.shown[0].agent_id
    assert offered == longest_idle  # the head of the index
    assert await redis.zscore(free, offered) is None  # capacity 1: full now, out of the index
    return cost, offered


async def test_a_dispatch_costs_the_same_with_ten_or_a_thousand_available_agents(redis):
    store = Store(redis, DeskMap({}), retention_s=3600, stats_timezone=datetime.UTC)
    await _available_agents(store, "warm", 1)
    await _offer_cost(store, redis, "warm")  # loads the script
    await _available_agents(store, "few", 10)
    await _available_agents(store, "many", 1000)

    few, _ = await _offer_cost(store, redis, "few")
    many, _ = await _offer_cost(store, redis, "many")
    assert many == few, (few, many)
    assert await redis.zcard(DESK.key(DESK.base("default"), "free", "many")) == 999


@pytest.mark.cluster
async def test_gauges_count_agents_in_redis_as_the_snapshot_counts_them(redis):
    store = Store(redis, DeskMap({"east": ("e1",)}), retention_s=3600, stats_timezone=datetime.UTC)
    agents = [
        ("idle", "default", "available", ["q1", "q2"]),
        ("full", "default", "available", ["q1"]),
        ("away", "default", "away", ["q1"]),
        ("gone", "default", "available", ["q2"]),
        ("east", "east", "available", ["e1"]),
    ]
    for agent, desk, status, queues in agents:
        await store.connect(desk, agent, f"conn-{agent}", agent, 600)
        if agent == "full":  # "idle" is alone with room in q1: it gets the request, claims it and is busy
            outcome = await store.session_event(view(new_session_id(), WAITING, queue="q1"), "", 60, "offer", 10)
            assert outcome.dispatched is not None and outcome.dispatched.shown[0].agent_id == "idle"
            assert (await store.claim("default", outcome.dispatched.shown[0].session_id, "idle")).outcome == "ok"
        await store.set_status(desk, agent, status, queues, 1)
    await store.gone("default", "gone", "conn-gone")

    counted = {queue: row.agents for queue, row in (await store.overview()).items()}
    assert counted == _agent_counts(await store.agents())
    assert counted["q1"] == {"available": 1, "busy": 1, "away": 1, "offline": 0}
    assert counted["q2"] == {"available": 0, "busy": 1, "away": 0, "offline": 1}
    assert counted["e1"] == {"available": 1, "busy": 0, "away": 0, "offline": 0}


@pytest.mark.cluster
async def test_the_overview_counts_waiting_requests_and_finds_the_longest_wait_across_priorities(redis):
    store = Store(redis, DeskMap({}), retention_s=3600, stats_timezone=datetime.UTC)
    now = time.time()
    # (priority, seconds waiting): the longest waiting request is neither first in line nor of the first priority.
    for priority, waited in ((5, 10.0), (0, 300.5), (2, 40.0), (0, 20.0), (5, 3.0), (-1, 90.0)):
        waiting = view(new_session_id(), WAITING, queue="q", priority=priority, updated_at=now - waited)
        await store.session_event(waiting, "created", 600, "offer", 10)
    overview = await store.overview()
    assert overview["q"].waiting == 6 and overview["q"].no_agents
    assert overview["q"].oldest_s == pytest.approx(now - 300.5, abs=0.002)

    settings = Settings(session_token_secret="s" * 32, _env_file=None)
    rows = {row["queue"]: row for row in await queue_overview(store, settings)}
    assert rows["q"]["waiting"] == 6 and rows["q"]["longest_wait_s"] == pytest.approx(300.5, abs=0.5)
    assert rows["support"]["waiting"] == 0 and rows["support"]["longest_wait_s"] == 0.0

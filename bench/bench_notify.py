"""Notification service: offer latency at 200 new requests/s, dashboard fan-out, memory per socket.

One service process (``python -m notification_service``) against the harness's Redis and NATS; the clients
(agents' and dashboards' sockets) run in this process, so on a 2-core machine they share the CPU with it.

- offer latency of the service alone: ``waiting`` ``SessionEvent``s published to JetStream at a steady 200/s
  (open loop), each measured from just before its publish to the ``offer`` frame on an agent's WebSocket
  (from a beacon through the registry: the ``latency`` suite).
- offer latency with 10 and with 1,000 available agents in one queue (the same way, at 100/s, each agent taking up
  to 50 offers): dispatch takes the longest idle agent from an index, so the tail must not grow with the agents
  (goal: p99 at 1,000 at most twice p99 at 10, in the same run).
- fan-out: 1,000 dashboard WebSockets; one event published; time until the last client has it (median of 5).
- memory: the service's RSS growth per open agent socket and per dashboard socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import nats
from redis.asyncio import Redis

from shared.accounts import AccountStore, Role
from shared.messaging import (
    MSG_ID_HEADER,
    SessionEvent,
    SessionState,
    SessionView,
    Source,
    new_event_id,
    session_subject,
)

from .desk import clocks_running, close_agents, connect, open_agents, open_loop, percentile, until_offered
from .harness import BenchEnv, Result, at_most

SCALE_AGENTS = (10, 1000)
SCALE_RATE_PER_S = 100
SCALE_MAX_RATIO = 2.0

RATE_PER_S = 200
CAPACITY = 50
DASHBOARDS = 1000
DASHBOARDS_PER_ACCOUNT = 20  # NOTIFY_MAX_DASHBOARD_STREAMS_PER_ACCOUNT's default
FANOUT_ROUNDS = 5
MEMORY_AGENTS = 500


def _service_pid() -> int:
    """The notification service process this benchmark started (a child of ours)."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if b"notification_service" in cmdline and ppid == me:
            return int(entry.name)
    raise RuntimeError("notification service process not found")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _waiting_event(js: Any, session_id: str, queue: str) -> None:
    now = time.time()
    view = SessionView(
        session_id=session_id,
        state=SessionState.WAITING,
        pin=session_id[:8].upper(),
        queue=queue,
        created_at=now,
        updated_at=now,
    )
    event = SessionEvent(
        event_id=new_event_id(),
        type="pin_assigned",
        source=Source.BEACON,
        prev_state=SessionState.CREATED,
        session=view,
    )
    await js.publish(session_subject(session_id, event.type), event.encode(), headers={MSG_ID_HEADER: event.event_id})


Trigger = Callable[[int], Awaitable[str]]
"""Makes request ``i`` wait for an agent; returns its session id."""


async def _offers(
    nc: Any,
    base: str,
    http: aiohttp.ClientSession,
    accounts: AccountStore,
    queue: str,
    trigger: Trigger,
    total: int,
    rate_per_s: float,
    agents: int,
) -> list[float]:
    """Milliseconds from each of ``total`` triggers (open loop) to its offer at one of ``agents`` agents."""
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    done = asyncio.Event()

    async def agent_reader(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            frame = json.loads(msg.data)
            if frame["type"] == "offer":  # this queue only gets this run's requests
                arrived[frame["session_id"]] = time.perf_counter()
                if len(arrived) == total:
                    done.set()

    sockets = await open_agents(http, base, accounts, queue, agents, CAPACITY)
    readers = [asyncio.create_task(agent_reader(ws)) for ws in sockets]

    async def one(i: int) -> None:
        started = time.perf_counter()
        session_id = await trigger(i)
        sent[session_id] = started

    with clocks_running():
        await open_loop(total, rate_per_s, one)
        await until_offered(done, readers, nc, sockets)
    return [(arrived[s] - sent[s]) * 1000 for s in sent if s in arrived]


async def _offer_latency(
    env: BenchEnv,
    nc: Any,
    base: str,
    http: aiohttp.ClientSession,
    accounts: AccountStore,
    queue: str,
    prepare: Callable[[int], Awaitable[Trigger]],
    label: str,
) -> list[Result]:
    total = int(RATE_PER_S * env.duration_s)
    trigger = await prepare(total)
    latencies = await _offers(nc, base, http, accounts, queue, trigger, total, RATE_PER_S, total // CAPACITY + 2)
    return [
        Result(f"{label}: offers measured", len(latencies), f"of {total} at {RATE_PER_S}/s"),
        Result(f"{label}: p50", statistics.median(latencies), "ms"),
        at_most(f"{label}: p99", percentile(latencies, 99), 25, unit="ms"),
    ]


async def _offer_latency_by_agents(
    env: BenchEnv, nc: Any, base: str, http: aiohttp.ClientSession, accounts: AccountStore, js: Any
) -> list[Result]:
    """Offer latency with 10 and with 1,000 available agents in one queue, and the ratio of their p99s."""
    # The 10 agents hold 500 offers at once: the run stays below that, so every request finds one with room.
    total = min(int(SCALE_RATE_PER_S * env.duration_s), SCALE_AGENTS[0] * CAPACITY * 4 // 5)
    results, p99 = [], {}
    for agents in SCALE_AGENTS:
        queue = f"scale{agents}"

        async def in_queue(i: int, queue: str = queue) -> str:
            session_id = uuid.uuid4().hex[:16]
            await _waiting_event(js, session_id, queue)
            return session_id

        latencies = await _offers(nc, base, http, accounts, queue, in_queue, total, SCALE_RATE_PER_S, agents)
        label = f"offer with {agents:,} available agents in the queue"
        p99[agents] = percentile(latencies, 99)
        results += [
            Result(f"{label}: offers measured", len(latencies), f"of {total} at {SCALE_RATE_PER_S}/s"),
            Result(f"{label}: p50", statistics.median(latencies), "ms"),
            Result(f"{label}: p99", p99[agents], "ms"),
        ]
    few, many = SCALE_AGENTS
    ratio = p99[many] / p99[few]
    results.append(
        Result(
            f"offer p99 with {many:,} / with {few} agents",
            ratio,
            "",
            f"<= {SCALE_MAX_RATIO:g}",
            ratio <= SCALE_MAX_RATIO,
        )
    )
    return results


def _from_jetstream(js: Any) -> Callable[[int], Awaitable[Trigger]]:
    async def prepare(total: int) -> Trigger:
        async def trigger(i: int) -> str:
            session_id = uuid.uuid4().hex[:16]
            await _waiting_event(js, session_id, "js")
            return session_id

        return trigger

    return prepare


async def _fanout(
    base: str, http: aiohttp.ClientSession, js: Any, supervisor_keys: list[str], pid: int
) -> list[Result]:
    before = _rss_kib(pid)

    async def first_frame(ws: aiohttp.ClientWebSocketResponse) -> str:
        return str(json.loads((await ws.receive()).data)["type"])

    sockets, firsts = [], []
    for i in range(DASHBOARDS):
        ws = await connect(http, base + "/ws/dashboard", supervisor_keys[i % len(supervisor_keys)])
        sockets.append(ws)
        firsts.append(asyncio.create_task(first_frame(ws)))  # read at once: pings are answered while reading
    assert set(await asyncio.gather(*firsts)) == {"snapshot"}
    per_dashboard = (_rss_kib(pid) - before) / DASHBOARDS

    rounds = []
    for _ in range(FANOUT_ROUNDS):
        session_id = uuid.uuid4().hex[:16]
        now = time.time()
        view = SessionView(session_id=session_id, state=SessionState.CREATED, created_at=now, updated_at=now)
        event = SessionEvent(event_id=new_event_id(), type="created", source=Source.API, session=view)

        async def until_seen(ws: aiohttp.ClientWebSocketResponse, sid: str = session_id) -> float:
            while True:
                frame = json.loads((await ws.receive()).data)
                if frame.get("kind") == "session" and frame["event"]["session"]["session_id"] == sid:
                    return time.perf_counter()

        waiters = [asyncio.create_task(until_seen(ws)) for ws in sockets]
        started = time.perf_counter()
        await js.publish(
            session_subject(session_id, "created"), event.encode(), headers={MSG_ID_HEADER: event.event_id}
        )
        arrivals = await asyncio.wait_for(asyncio.gather(*waiters), timeout=30)
        rounds.append((max(arrivals) - started) * 1000)
    for ws in sockets:
        await ws.close()
    return [
        at_most(
            f"fan-out to {DASHBOARDS} dashboards, last client (median of {FANOUT_ROUNDS})",
            statistics.median(rounds),
            250,
            unit="ms",
        ),
        Result("memory per dashboard socket", per_dashboard, "KiB"),
    ]


async def _agent_memory(
    base: str, http: aiohttp.ClientSession, accounts: AccountStore, pid: int
) -> tuple[Result, list[aiohttp.ClientWebSocketResponse]]:
    """Open agent sockets (left open, so what they hold is not reused by later measurements)."""
    keys = [(await accounts.create(f"mem-agent-{i}", Role.AGENT))[1] for i in range(MEMORY_AGENTS)]
    before = _rss_kib(pid)
    sockets = [await connect(http, base + "/ws/agent", key) for key in keys]
    for ws in sockets:
        assert json.loads((await ws.receive()).data)["type"] == "ready"
    per_agent = (_rss_kib(pid) - before) / MEMORY_AGENTS
    return Result("memory per agent socket", per_agent, "KiB"), sockets


async def run(env: BenchEnv) -> list[Result]:
    secret = {"SESSION_TOKEN_SECRET": "bench-session-secret-0123456789"}
    base = await env.start_service(
        "notification_service", {**secret, "NOTIFY_OFFER_TIMEOUT_S": "60", "NOTIFY_MAX_WAIT_S": "600"}
    )
    pid = _service_pid()
    redis = Redis.from_url(env.redis_url, decode_responses=True)
    accounts = AccountStore(redis)
    # A wall of dashboards on many keys: NOTIFY_MAX_DASHBOARD_STREAMS_PER_ACCOUNT caps one account's streams.
    supervisor_keys = [
        (await accounts.create(f"bench-supervisor-{i}", Role.SUPERVISOR))[1]
        for i in range(-(-DASHBOARDS // DASHBOARDS_PER_ACCOUNT))
    ]
    nc = await nats.connect(env.nats_url)
    js = nc.jetstream()
    ws_base = base.replace("http://", "ws://")
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            # Sockets first, while the snapshot each dashboard gets is small.
            agent_memory, idle_agents = await _agent_memory(ws_base, http, accounts, pid)
            results = [agent_memory, *await _fanout(ws_base, http, js, supervisor_keys, pid)]
            await close_agents(nc, idle_agents)
            # The service alone (beacon -> offer through the registry: the `latency` suite).
            results += await _offer_latency(
                env,
                nc,
                ws_base,
                http,
                accounts,
                "js",
                _from_jetstream(js),
                "waiting event on JetStream -> offer on socket",
            )
            results += await _offer_latency_by_agents(env, nc, ws_base, http, accounts, js)
    finally:
        await nc.drain()
        await redis.aclose()
    return results

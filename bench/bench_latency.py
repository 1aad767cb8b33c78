"""Beacon to offer: how soon a customer who got a PIN is offered to an agent, with 1 and with 2 registry replicas.

One notification service and one registry (then a second one: the first keeps the publishing lease, so half the
beacons land on a replica that must nudge it); agents' sockets and the load run in this process. ``pincode_updated``
beacons go out at a steady 200/s (open loop), spread round-robin over the replicas, each measured from just before
its POST to the ``offer`` frame on an agent's socket, and split where it goes: POST → 202, 202 → the event on
NATS (the registry's outbox), NATS → offer (the notification service). Each configuration runs ``RUNS`` times
(fresh sessions, agents and queue each run); the table gives the median run's p50/p99 and the worst run's p99,
since a tail that shows in one run of five is a defect, not noise. Per-run figures go to stderr.

Each run also reports the CPU that programs outside the benchmark took while its clocks ran: on two cores, ~0.1 s
of it within a few hundred ms (RabbitMQ's epmd check on this machine, every 60 s) stalls every process here and
puts 10-30 ms into the p99 of the run it falls in (not every time). The table gives that CPU for the worst run and
the most of any run; about 50 ms a run is the machine's idle services.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import nats
from redis.asyncio import Redis

from shared.accounts import AccountStore
from shared.messaging import REGISTRY_CREATE, REGISTRY_END, CreatedSession, CreateSession, EndSession, SessionView
from shared.rpc import call

from .desk import clocks_running, open_agents, open_loop, percentile, until_caught_up, until_offered
from .harness import BenchEnv, Result, at_most, other_programs_cpu_s, processes

RATE_PER_S = 200
CAPACITY = 50
TARGET_P99_MS = 25.0
SECRET = {"SESSION_TOKEN_SECRET": "bench-session-secret-0123456789"}
_PINS = itertools.count(1_000_000)


@dataclass
class RunTimes:
    """Per-request milliseconds of one run."""

    total: list[float]
    post: list[float]
    outbox: list[float]
    notify: list[float]
    outside_ms: float
    """CPU that programs outside the benchmark took while the clocks ran (see ``other_programs_cpu_s``)."""

    def line(self, label: str) -> str:
        parts = [f"{name} p50 {statistics.median(xs):.2f} p99 {percentile(xs, 99):.2f}" for name, xs in self.parts()]
        return (
            f"{label}: {len(self.total)} offers; "
            + "; ".join(parts)
            + f" ms; other programs' CPU {self.outside_ms:.0f} ms"
        )

    def parts(self) -> list[tuple[str, list[float]]]:
        return [("total", self.total), ("post", self.post), ("202->nats", self.outbox), ("nats->offer", self.notify)]


async def _one_run(
    env: BenchEnv, nc: Any, http: aiohttp.ClientSession, accounts: AccountStore, ws_base: str, registries: list[str]
) -> RunTimes:
    total = int(RATE_PER_S * env.duration_s)
    queue = f"lat-{time.monotonic_ns()}"
    created = [
        await call(nc, REGISTRY_CREATE, CreateSession(queue=queue, customer_id=f"bench-{i}"), CreatedSession)
        for i in range(total)
    ]
    ids = {c.session.session_id for c in created}
    started: dict[str, float] = {}
    answered: dict[str, float] = {}
    published: dict[str, float] = {}
    offered: dict[str, float] = {}
    done = asyncio.Event()

    async def on_published(msg: Any) -> None:
        published.setdefault(msg.subject.split(".")[2], time.perf_counter())

    async def agent_reader(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            frame = json.loads(msg.data)
            if frame["type"] == "offer" and frame["session_id"] in ids:
                offered[frame["session_id"]] = time.perf_counter()
                if len(offered) == total:
                    done.set()

    sub = await nc.subscribe("cobrowse.session.*.pin_assigned", cb=on_published)
    sockets = await open_agents(http, ws_base, accounts, queue, total // CAPACITY + 2, CAPACITY)
    readers = [asyncio.create_task(agent_reader(ws)) for ws in sockets]
    await until_caught_up(nc)  # the sessions' `created` events first

    async def one(i: int) -> None:
        c = created[i]
        event = {"id": f"pin-{i}", "name": "pincode_updated", "ts": int(time.time() * 1000), "seq": 1}
        event["payload"] = {"pinCode": str(next(_PINS))}  # unique: earlier runs' sessions are still live
        body = {"session_id": c.session.session_id, "token": c.beacon_token, "event": event}
        t0 = time.perf_counter()
        async with http.post(registries[i % len(registries)] + "/beacons", json=body) as response:
            response.raise_for_status()
        answered[c.session.session_id] = time.perf_counter()
        started[c.session.session_id] = t0

    before = processes()
    with clocks_running():
        await open_loop(total, RATE_PER_S, one)
        await until_offered(done, readers, nc, sockets)
    outside_ms = other_programs_cpu_s(before, processes()) * 1000
    await sub.unsubscribe()
    # Served customers leave: left waiting (they send no heartbeats), the run's sessions would time out together
    # 90 s later, in the middle of a later run.
    for c in created:
        await call(nc, REGISTRY_END, EndSession(session_id=c.session.session_id), SessionView)
    await until_caught_up(nc)
    measured = [s for s in started if s in offered and s in published]

    def ms(a: dict[str, float], b: dict[str, float]) -> list[float]:
        return [(b[s] - a[s]) * 1000 for s in measured]

    return RunTimes(
        ms(started, offered), ms(started, answered), ms(answered, published), ms(published, offered), outside_ms
    )


def _summary(label: str, runs: list[RunTimes], expected: int) -> list[Result]:
    p99s = [percentile(r.total, 99) for r in runs]
    rows = [
        Result(f"{label}: offers measured (all runs)", sum(len(r.total) for r in runs), f"of {expected}"),
        Result(f"{label}: p50 (median run)", statistics.median(statistics.median(r.total) for r in runs), "ms"),
        at_most(f"{label}: p99 (median of {len(runs)} runs)", statistics.median(p99s), TARGET_P99_MS, unit="ms"),
        at_most(f"{label}: p99 (worst run)", max(p99s), TARGET_P99_MS, unit="ms"),
    ]
    for name, _ in runs[0].parts()[1:]:
        worst = max(percentile(dict(r.parts())[name], 99) for r in runs)
        rows.append(Result(f"{label}: {name} p99 (worst run)", worst, "ms"))
    worst_run = runs[p99s.index(max(p99s))]
    rows += [
        Result(f"{label}: other programs' CPU during the worst run", worst_run.outside_ms, "ms"),
        Result(f"{label}: other programs' CPU, most in one run", max(r.outside_ms for r in runs), "ms"),
    ]
    return rows


async def run(env: BenchEnv) -> list[Result]:
    base = await env.start_service(
        "notification_service", {**SECRET, "NOTIFY_OFFER_TIMEOUT_S": "60", "NOTIFY_MAX_WAIT_S": "600"}
    )
    registries = [await env.start_service("session_registry", SECRET)]
    redis = Redis.from_url(env.redis_url, decode_responses=True)
    accounts = AccountStore(redis)
    nc = await nats.connect(env.nats_url)
    ws_base = base.replace("http://", "ws://")
    results: list[Result] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for replicas in (1, 2):
                if replicas == 2:
                    registries.append(await env.start_service("session_registry", SECRET))
                label = f"beacon -> offer, {replicas} registr{'y' if replicas == 1 else 'ies'}"
                await _one_run(env, nc, http, accounts, ws_base, registries)  # warm-up, not counted
                runs = []
                for n in range(env.runs):
                    runs.append(await _one_run(env, nc, http, accounts, ws_base, registries))
                    print(runs[-1].line(f"  {label}, run {n + 1}"), file=sys.stderr, flush=True)
                results += _summary(label, runs, env.runs * int(RATE_PER_S * env.duration_s))
    finally:
        await nc.drain()
        await redis.aclose()
    return results

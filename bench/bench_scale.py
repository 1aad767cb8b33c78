"""Registry cost and scale-out: CPU per single-event beacon against a bare aiohttp floor, and events/s published
to JetStream with 1 and with 2 registry replicas.

- CPU ratio: the same wrk load of single-event beacons (new event ids, real transitions; see ``bench_beacons``)
  against the registry and against ``bench.floor`` (a bare aiohttp JSON handler on uvloop), in alternating
  rounds; CPU time per request of each process, the lowest round of each. CPU per request, unlike throughput,
  hardly moves with what else the machine runs. Twice: with the registry publishing its own outbox, and ingest
  only (the publishing lease held elsewhere, as on every replica but one).
- Replicas: wrk saturates one registry, then two (one wrk each, beacons spread over both); the figure is the rate
  at which JetStream's ``COBROWSE`` stream grows during the load (published, not just accepted).
"""

from __future__ import annotations

import asyncio
import sys
import time

import nats
from nats.js import JetStreamContext
from redis.asyncio import Redis

from devstack.servers import free_port
from shared.messaging import STREAM, CreatedSession

from .bench_beacons import LEASE, SECRET, beacon_load, create_sessions, drain_s
from .harness import BenchEnv, Result, at_most

ROUNDS = 3
TARGET_CPU_RATIO = 2.5


async def _cpu_per_request(env: BenchEnv, url: str, sessions: list[CreatedSession], duration_s: float) -> float:
    before = env.cpu_seconds(url)
    result = await beacon_load(env, url, sessions, 1, duration_s)
    return (env.cpu_seconds(url) - before) / max(result.requests, 1) * 1e6


async def _published_per_s(
    env: BenchEnv, js: JetStreamContext, urls: list[str], sessions: list[CreatedSession]
) -> float:
    """Events/s stored in the stream while wrk loads every url at once (the first and last half second left out).

    Each url gets its own share of the sessions: a page numbers its events in one sequence, whichever replica
    receives them, so two loads numbering the same sessions' events independently would be two pages claiming one
    session, and the registry refuses most of such a mix as repeats (that, not the replicas, made 2 look slower).
    """

    async def seq() -> int:
        info = await js.stream_info(STREAM)
        return int(info.state.last_seq)

    loads = [
        asyncio.create_task(beacon_load(env, url, sessions[i :: len(urls)], 1, env.duration_s))
        for i, url in enumerate(urls)
    ]
    await asyncio.sleep(0.5)
    first, t0 = await seq(), time.monotonic()
    await asyncio.sleep(env.duration_s - 1.0)
    last, t1 = await seq(), time.monotonic()
    await asyncio.gather(*loads)
    return (last - first) / (t1 - t0)


async def run(env: BenchEnv) -> list[Result]:
    port = free_port()
    args = [sys.executable, "-m", "bench.floor", str(port)]
    floor = await env.start_process("floor", args, env.service_env(), port=port)
    first = await env.start_service("session_registry", {"SESSION_TOKEN_SECRET": SECRET})
    sessions = await create_sessions(env, first)
    redis = Redis.from_url(env.redis_url)
    nc = await nats.connect(env.nats_url)
    try:
        for url in (floor, first):
            await _cpu_per_request(env, url, sessions, 1)  # warm-up
        floor_cpu: list[float] = []
        ours: list[float] = []
        alone: list[float] = []
        for _ in range(1 if env.quick else ROUNDS):
            floor_cpu.append(await _cpu_per_request(env, floor, sessions, env.duration_s))
            ours.append(await _cpu_per_request(env, first, sessions, env.duration_s))
            await redis.set(LEASE, "bench", px=int((env.duration_s + 30) * 1000))
            alone.append(await _cpu_per_request(env, first, sessions, env.duration_s))
            await redis.delete(LEASE)
        # The ingest-only round's backlog first: published during the next load, it would count as that load's.
        await drain_s(redis, time.monotonic())
        one = await _published_per_s(env, nc.jetstream(), [first], sessions)
        second = await env.start_service("session_registry", {"SESSION_TOKEN_SECRET": SECRET})
        await drain_s(redis, time.monotonic())
        two = await _published_per_s(env, nc.jetstream(), [first, second], sessions)
    finally:
        await nc.drain()
        await redis.aclose()
    return [
        Result("floor (bare aiohttp JSON handler) cpu per beacon", min(floor_cpu), "us"),
        Result("registry cpu per single-event beacon", min(ours), "us"),
        at_most("registry cpu / floor cpu", min(ours) / min(floor_cpu), TARGET_CPU_RATIO),
        Result("registry cpu per beacon, ingest only", min(alone), "us"),
        Result("registry cpu / floor cpu, ingest only", min(alone) / min(floor_cpu)),
        Result("events/s published, 1 registry", one, "events/s"),
        Result("events/s published, 2 registries", two, "events/s"),
        Result("events/s published, 2 / 1 registries", two / one),
    ]

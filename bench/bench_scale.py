"""Registry cost: CPU per single-event beacon against a bare aiohttp floor.

- CPU ratio: the same wrk load of single-event beacons (new event ids, real transitions; see ``bench_beacons``)
  against the registry and against ``bench.floor`` (a bare aiohttp JSON handler on uvloop), in alternating
  rounds; CPU time per request of each process, the lowest round of each. CPU per request, unlike throughput,
  hardly moves with what else the machine runs. Twice: with the registry publishing its own outbox, and ingest
  only (every partition's publishing lease held elsewhere).

The events/s published with 1 and 2 registries moved to ``bench_beacons`` (scale-out rows).
"""

from __future__ import annotations

import sys

from redis.asyncio import Redis

from devstack.servers import free_port
from shared.messaging import CreatedSession

from .bench_beacons import SECRET, beacon_load, create_sessions, hold_leases, release_leases
from .harness import BenchEnv, Result, at_most

ROUNDS = 3
TARGET_CPU_RATIO = 2.5


async def _cpu_per_request(env: BenchEnv, url: str, sessions: list[CreatedSession], duration_s: float) -> float:
    before = env.cpu_seconds(url)
    result = await beacon_load(env, url, sessions, 1, duration_s)
    return (env.cpu_seconds(url) - before) / max(result.requests, 1) * 1e6


async def run(env: BenchEnv) -> list[Result]:
    port = free_port()
    args = [sys.executable, "-m", "bench.floor", str(port)]
    floor = await env.start_process("floor", args, env.service_env(), port=port)
    first = await env.start_service("session_registry", {"SESSION_TOKEN_SECRET": SECRET})
    sessions = await create_sessions(env, first)
    redis = Redis.from_url(env.redis_url)
    try:
        for url in (floor, first):
            await _cpu_per_request(env, url, sessions, 1)  # warm-up
        floor_cpu: list[float] = []
        ours: list[float] = []
        alone: list[float] = []
        for _ in range(1 if env.quick else ROUNDS):
            floor_cpu.append(await _cpu_per_request(env, floor, sessions, env.duration_s))
            ours.append(await _cpu_per_request(env, first, sessions, env.duration_s))
            await hold_leases(redis, env.duration_s + 30)
            alone.append(await _cpu_per_request(env, first, sessions, env.duration_s))
            await release_leases(redis)
    finally:
        await redis.aclose()
    return [
        Result("floor (bare aiohttp JSON handler) cpu per beacon", min(floor_cpu), "us"),
        Result("registry cpu per single-event beacon", min(ours), "us"),
        at_most("registry cpu / floor cpu", min(ours) / min(floor_cpu), TARGET_CPU_RATIO),
        Result("registry cpu per beacon, ingest only", min(alone), "us"),
        Result("registry cpu / floor cpu, ingest only", min(alone) / min(floor_cpu)),
    ]

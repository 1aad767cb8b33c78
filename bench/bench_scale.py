"""Registry cost: CPU per single-event beacon against a bare aiohttp floor.

- CPU ratio: the same wrk load of single-event beacons (new event ids, real transitions; see ``bench_beacons``)
  against the registry and against ``bench.floor`` (a bare aiohttp JSON handler on uvloop), in alternating
  rounds; CPU time per request of each process, the lowest round of each. CPU per request moves less than
  throughput with what else the machine runs, but still with its phase (the floor's 52-98 µs on one machine).
  Twice: with the registry publishing its own outbox, and ingest only (every partition's publishing lease held
  elsewhere).
- Instruction ratio, when valgrind is installed: both processes again, each under callgrind with counting switched
  on only during one load, instructions per request. The same code and load give the same count within ~1 %,
  whatever the machine is doing, so this is the figure to compare across runs and days (instructions are not time:
  the registry's larger working set makes each cost a little more).

The events/s published with 1 and 2 registries moved to ``bench_beacons`` (scale-out rows).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys

from redis.asyncio import Redis

from devstack.servers import free_port
from shared.messaging import CreatedSession

from .bench_beacons import SECRET, beacon_load, create_sessions, hold_leases, release_leases
from .harness import BenchEnv, Result, at_most

ROUNDS = 3
TARGET_CPU_RATIO = 2.5
COUNTED_S = 10.0
"""Seconds of load counted under callgrind (~1,000 beacons: the process runs ~50× slower there)."""


async def _cpu_per_request(env: BenchEnv, url: str, sessions: list[CreatedSession], duration_s: float) -> float:
    before = env.cpu_seconds(url)
    result = await beacon_load(env, url, sessions, 1, duration_s)
    return (env.cpu_seconds(url) - before) / max(result.requests, 1) * 1e6


async def _callgrind_control(flag: str, pid: str) -> None:
    control = await asyncio.create_subprocess_exec(
        "callgrind_control", flag, pid, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    if await control.wait():
        raise RuntimeError(f"callgrind_control {flag} {pid} failed")


async def _instructions_per_request(
    env: BenchEnv, name: str, args: list[str], extra_env: dict[str, str], port: int, sessions: list[CreatedSession]
) -> float:
    out = env.work_dir / f"{name}.callgrind"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    url = await env.start_process(name, [*valgrind, *args], env.service_env(extra_env), port=port)
    pid = str(env.pids[url])
    await beacon_load(env, url, sessions, 1, 3)  # warm-up, not counted
    await _callgrind_control("--instr=on", pid)
    result = await beacon_load(env, url, sessions, 1, COUNTED_S)
    await _callgrind_control("--instr=off", pid)
    os.kill(int(pid), signal.SIGTERM)  # callgrind writes its counts when the process exits
    for _ in range(600):
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")] if out.exists() else []
        if totals:
            return int(totals[0].split()[1]) / max(result.requests, 1)
        await asyncio.sleep(0.1)  # waiting for another process's file; there is no event to await
    raise TimeoutError(f"callgrind wrote no counts for {name}")


async def _instruction_rows(env: BenchEnv, sessions: list[CreatedSession]) -> list[Result]:
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        return []
    port = free_port()
    floor = await _instructions_per_request(
        env, "floor-callgrind", [sys.executable, "-m", "bench.floor", str(port)], {}, port, sessions
    )
    port = free_port()
    registry_env = {"REGISTRY_PORT": str(port), "SESSION_TOKEN_SECRET": SECRET}
    ours = await _instructions_per_request(
        env, "registry-callgrind", [sys.executable, "-m", "session_registry"], registry_env, port, sessions
    )
    return [
        Result("floor instructions per beacon (callgrind)", floor / 1000, "k instr"),
        Result("registry instructions per single-event beacon", ours / 1000, "k instr"),
        Result("registry instructions / floor instructions", ours / floor),
    ]


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
    instructions = await _instruction_rows(env, sessions)
    return [
        Result("floor (bare aiohttp JSON handler) cpu per beacon", min(floor_cpu), "us"),
        Result("registry cpu per single-event beacon", min(ours), "us"),
        at_most("registry cpu / floor cpu", min(ours) / min(floor_cpu), TARGET_CPU_RATIO),
        Result("registry cpu per beacon, ingest only", min(alone), "us"),
        Result("registry cpu / floor cpu, ingest only", min(alone) / min(floor_cpu)),
        *instructions,
    ]

"""Token issuance: throughput and latency of ``POST /`` (role 1) against a ceiling server doing only the signing.

Both servers are one process each and get the same wrk load (same body, 16 connections, same duration), in
alternating rounds so that noise from other processes on the machine hits both alike; the best round of each
counts. The token service runs as ``python -m token_service`` with its real middleware, validation, Redis rate
limit (raised so that the run is not refused), metrics, and LOG_LEVEL=WARNING; one more round at INFO shows what
the per-request JSON log line costs. CPU time per token is printed too: unlike throughput it does not depend on
what else the machine is running.
"""

from __future__ import annotations

import json
import sys

from devstack.servers import free_port

from .harness import BenchEnv, Result, at_least, at_most
from .load import LoadResult

BODY = json.dumps({"role": 1, "userId": "bench-user-0001", "userName": "Bench Customer"}).encode()
HEADERS = {"Content-Type": "application/json"}
CONNECTIONS = 16
ROUNDS = 3
TARGET_RATIO = 0.7
TARGET_P99_MS = 5.0
UNLIMITED = {"TOKEN_CUSTOMER_TOKENS_PER_WINDOW": str(10**12), "TOKEN_RATE_WINDOW_S": "3600"}


async def run(env: BenchEnv) -> list[Result]:
    port = free_port()
    ceiling_url = await env.start_process(
        "ceiling", [sys.executable, "-m", "bench.ceiling", str(port)], env.service_env(), port=port
    )
    service_url = await env.start_service("token_service", UNLIMITED)

    async def load(url: str, duration_s: float | None = None) -> LoadResult:
        return await env.wrk(url + "/", body=BODY, headers=HEADERS, connections=CONNECTIONS, duration_s=duration_s)

    for url in (ceiling_url, service_url):
        await load(url, duration_s=1)  # warm-up
    ceiling: list[LoadResult] = []
    ours: list[LoadResult] = []
    for _ in range(ROUNDS):
        ceiling.append(await load(ceiling_url))
        ours.append(await load(service_url))
    top = max(ceiling, key=lambda r: r.rps)
    best = max(ours, key=lambda r: r.rps)
    cpu_ceiling = min(r.server_cpu_us or 0.0 for r in ceiling)
    cpu_ours = min(r.server_cpu_us or 0.0 for r in ours)

    info_url = await env.start_service("token_service", {**UNLIMITED, "LOG_LEVEL": "INFO"})
    await load(info_url, duration_s=1)
    info = await load(info_url)
    return [
        Result("ceiling throughput", top.rps, "tokens/s"),
        Result("ceiling p50", top.p50_ms, "ms"),
        Result("ceiling p99", top.p99_ms, "ms"),
        Result("ceiling cpu per token", cpu_ceiling, "us"),
        Result("throughput", best.rps, "tokens/s"),
        at_least("throughput / ceiling", best.rps / top.rps, TARGET_RATIO),
        Result("p50", best.p50_ms, "ms"),
        at_most("p99", best.p99_ms, TARGET_P99_MS, unit="ms"),
        Result("cpu per token", cpu_ours, "us"),
        Result("ceiling cpu / our cpu", cpu_ceiling / cpu_ours),
        at_most("errors", float(sum(r.errors for r in ceiling + ours)), 1),
        Result("throughput, LOG_LEVEL=INFO", info.rps, "tokens/s"),
        Result("cpu per token, LOG_LEVEL=INFO", info.server_cpu_us or 0.0, "us"),
    ]

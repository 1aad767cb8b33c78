"""Token issuance: throughput and latency of ``POST /`` (role 1) against a ceiling server doing only the signing.

Both servers are one process each and get the same wrk load (same body, connections and duration), measured in
alternating rounds so that noise from other processes on the machine hits both alike; the best round counts.
"""

from __future__ import annotations

import json
import sys

from devstack.servers import free_port

from .harness import BenchEnv, Result, at_most
from .load import LoadResult

BODY = json.dumps({"role": 1, "userId": "bench-user-0001", "userName": "Bench Customer"}).encode()
HEADERS = {"Content-Type": "application/json"}
CONNECTIONS = 16
ROUNDS = 2


def _best(results: list[LoadResult]) -> LoadResult:
    return max(results, key=lambda r: r.rps)


async def run(env: BenchEnv) -> list[Result]:
    port = free_port()
    ceiling_url = await env.start_process(
        "ceiling", [sys.executable, "-m", "bench.ceiling", str(port)], env.service_env(), port=port
    )
    await env.wrk(ceiling_url + "/", body=BODY, headers=HEADERS, connections=CONNECTIONS, duration_s=1)  # warm-up
    ceiling: list[LoadResult] = []
    for _ in range(ROUNDS):
        ceiling.append(await env.wrk(ceiling_url + "/", body=BODY, headers=HEADERS, connections=CONNECTIONS))
    top = _best(ceiling)
    return [
        Result("ceiling throughput", top.rps, "tokens/s"),
        Result("ceiling p50", top.p50_ms, "ms"),
        at_most("ceiling p99", top.p99_ms, 5.0, unit="ms"),
        Result("ceiling errors", float(top.errors)),
    ]

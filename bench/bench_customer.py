"""Customer start under a burst, and its cost against issuing a bare customer token.

The token service (``python -m token_service``) and a session registry run, limits raised so that nothing is
refused for rate. ``POST /api/customer/start`` opens a registry session over NATS and signs a token; ``POST /``
only signs one.

- burst: 2,000 starts sent at once (one client connection each); every answer must be 2xx (a 429/503 with
  ``Retry-After`` is counted apart, as backpressure, not as an error); p99 of the answers.
- throughput: the same wrk load on each route in alternating rounds (customer token, start, and an agent's connect
  to one live PIN); the best round of each; the ratios to the customer token are the figures (goal >= 0.3), the
  absolute rates move with the machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

import aiohttp
from redis.asyncio import Redis

from shared.accounts import AccountStore, Role

from .desk import percentile
from .harness import BenchEnv, Result, at_least, at_most

BURST = 2000
ROUNDS = 3
TARGET_RATIO = 0.3
HEADERS = {"Content-Type": "application/json"}
START = json.dumps({"queue": "bench", "userName": "Bench Customer"}).encode()
TOKEN = json.dumps({"role": 1, "userId": "bench-user-0001", "userName": "Bench Customer"}).encode()
UNLIMITED = {
    "TOKEN_CUSTOMER_TOKENS_PER_WINDOW": str(10**12),
    "TOKEN_STARTS_PER_WINDOW": str(10**12),
    "TOKEN_AGENT_TOKENS_PER_WINDOW": str(10**12),
    "TOKEN_PIN_FAILURES_PER_AGENT": str(10**12),
    "TOKEN_PIN_FAILURES_PER_IP": str(10**12),
    "TOKEN_RATE_WINDOW_S": "3600",
    "SESSION_TOKEN_SECRET": "bench-session-secret-0123456789",
}


async def _burst(url: str) -> tuple[list[float], int, int]:
    """Latencies (ms) of the 2xx answers, backpressure answers (429/503 with Retry-After), other failures."""
    latencies: list[float] = []
    refused = failed = 0
    statuses: Counter[str] = Counter()
    gate = asyncio.Event()

    async def one(http: aiohttp.ClientSession) -> None:
        nonlocal refused, failed
        await gate.wait()
        started = time.perf_counter()
        try:
            async with http.post(url + "/api/customer/start", data=START, headers=HEADERS) as response:
                await response.read()
                statuses[str(response.status)] += 1
                if response.status < 300:
                    latencies.append((time.perf_counter() - started) * 1000)
                elif response.status in (429, 503) and "Retry-After" in response.headers:
                    refused += 1
                else:
                    failed += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            statuses[type(exc).__name__] += 1
            failed += 1

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as http:
        tasks = [asyncio.create_task(one(http)) for _ in range(BURST)]
        await asyncio.sleep(0)  # every task is parked at the gate: they start together
        gate.set()
        await asyncio.gather(*tasks)
    print(f"  {BURST} concurrent starts, answers: {dict(statuses)}", file=sys.stderr, flush=True)
    return latencies, refused, failed


async def _agent_connect(token: str, registry: str, redis_url: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an agent connect to a live PIN: an agent key, and a session that reported its PIN."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    _, key = await AccountStore(redis).create("Bench Agent", Role.AGENT)
    await redis.aclose()
    pin = "424242"
    async with aiohttp.ClientSession() as http:
        async with http.post(token + "/api/customer/start", data=START, headers=HEADERS) as response:
            started = await response.json()
        event = {"id": "pin-1", "name": "pincode_updated", "ts": int(time.time() * 1000), "seq": 1}
        event["payload"] = {"pinCode": pin}
        beacon = {"session_id": started["session_id"], "token": started["session_token"], "event": event}
        async with http.post(registry + "/beacons", json=beacon) as response:
            response.raise_for_status()
    return json.dumps({"pin": pin}).encode(), {**HEADERS, "Authorization": f"Bearer {key}"}


async def run(env: BenchEnv) -> list[Result]:
    registry = await env.start_service("session_registry", UNLIMITED)
    token = await env.start_service("token_service", UNLIMITED)
    latencies, refused, failed = await _burst(token)
    connect, connect_headers = await _agent_connect(token, registry, env.redis_url)

    async def load(path: str, body: bytes, duration_s: float | None = None, headers: dict[str, str] = HEADERS) -> float:
        result = await env.wrk(token + path, body=body, headers=headers, connections=16, duration_s=duration_s)
        return result.rps if not result.errors else 0.0

    await load("/", TOKEN, 1)  # warm-up
    await load("/api/customer/start", START, 1)
    await load("/api/agent/connect", connect, 1, connect_headers)
    tokens, starts, connects = [], [], []
    for _ in range(1 if env.quick else ROUNDS):
        tokens.append(await load("/", TOKEN))
        starts.append(await load("/api/customer/start", START))
        connects.append(await load("/api/agent/connect", connect, headers=connect_headers))
    return [
        at_most(f"{BURST} concurrent starts: errors (not 2xx, not 429/503 with Retry-After)", failed, 1),
        Result(f"{BURST} concurrent starts: refused with Retry-After", refused),
        Result(f"{BURST} concurrent starts: p50", percentile(latencies, 50) if latencies else 0.0, "ms"),
        Result(f"{BURST} concurrent starts: p99", percentile(latencies, 99) if latencies else 0.0, "ms"),
        Result("customer tokens/s (POST /)", max(tokens), "req/s"),
        Result("customer starts/s (POST /api/customer/start)", max(starts), "req/s"),
        at_least("starts/s / customer tokens/s", max(starts) / max(tokens), TARGET_RATIO),
        Result("agent connects/s (POST /api/agent/connect, a live PIN)", max(connects), "req/s"),
        at_least("agent connects/s / customer tokens/s", max(connects) / max(tokens), TARGET_RATIO),
    ]

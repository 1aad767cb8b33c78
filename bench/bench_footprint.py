"""What a session costs in Redis, and what the PIN guessing budgets allow.

- Redis bytes per 10-minute session: ``SESSIONS`` sessions each get a PIN and 40 heartbeats 15 s apart (client
  time; 10 minutes of a waiting customer), posted to a registry; once its outbox is drained, the growth of what
  Redis's keys hold (``MEMORY USAGE`` of every key, summed) divided by the sessions: every key a session adds (its
  hash, history, PIN) and its share of the partitions' timers, index and outbox; not counted: the entry in
  Redis's expiry index of each key with a TTL (~24 B, three per session). Goal < 2 KB. (``used_memory`` also moves
  with client buffers and allocator state: after the 2,000-connection suite it once fell during the measurement.)
- The chance to hit one of 100 live PINs within an hour with 10 agent keys from one IP:
  ``token_service.limits.guess_probability`` over the default budgets (guesses per key and per IP per window;
  the token service's burst tests prove a budget is never exceeded) and Zoom's 6-digit PIN space. Goal: at most
  the 1.2 % the documented caps promise (issue 9 measured 21 % before the budgets were race-safe).
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from redis.asyncio import Redis

from .bench_beacons import SECRET, create_sessions, drain_s
from .harness import BenchEnv, Result, at_most

SESSIONS = 101  # bench_beacons' sessions
HEARTBEATS = 40  # 10 minutes at one per 15 s
PER_POST = 10
PIN_SPACE = 10**6
LIVE_PINS = 100
AGENT_KEYS = 10
TARGET_BYTES = 2048


def _guess_probability() -> float:
    from token_service.limits import guess_probability
    from token_service.settings import Settings

    caps: dict[str, Any] = {name: f.default for name, f in Settings.model_fields.items()}
    return guess_probability(
        per_key=caps["pin_failures_per_agent"],
        per_ip=caps["pin_failures_per_ip"],
        window_s=caps["pin_window_s"],
        keys=AGENT_KEYS,
        live_pins=LIVE_PINS,
        pin_space=PIN_SPACE,
        period_s=3600,
    )


async def _keys_bytes(redis: Redis) -> int:
    """What every key holds, by ``MEMORY USAGE`` (all of a collection's elements counted: ``SAMPLES 0``)."""
    total = 0
    async for key in redis.scan_iter(count=1000):
        total += int(await redis.memory_usage(key, samples=0) or 0)
    return total


async def _session_bytes(env: BenchEnv) -> float:
    registry = await env.start_service("session_registry", {"SESSION_TOKEN_SECRET": SECRET})
    redis = Redis.from_url(env.redis_url)
    try:
        before = await _keys_bytes(redis)
        sessions = await create_sessions(env, registry)  # each has its PIN
        start_ms = int(time.time() * 1000)
        async with aiohttp.ClientSession() as http:
            for first in range(0, HEARTBEATS, PER_POST):
                for n, c in enumerate(sessions):
                    events = [
                        {"id": f"hb-{n}-{k}", "name": "heartbeat", "ts": start_ms + k * 15_000, "seq": k + 1}
                        for k in range(first, first + PER_POST)
                    ]
                    body = {"session_id": c.session.session_id, "token": c.beacon_token, "events": events}
                    async with http.post(registry + "/beacons", json=body) as response:
                        response.raise_for_status()
        await drain_s(redis, time.monotonic(), timeout_s=30)  # every partition's outbox published
        after = await _keys_bytes(redis)
    finally:
        await redis.aclose()
    return (after - before) / len(sessions)


async def run(env: BenchEnv) -> list[Result]:
    per_session = await _session_bytes(env)
    chance = _guess_probability()
    return [
        at_most("Redis bytes per 10-minute session (15 s heartbeats)", per_session, TARGET_BYTES, unit="B"),
        at_most(f"PIN hit chance: {LIVE_PINS} live PINs, 1 h, {AGENT_KEYS} keys, 1 IP", chance * 100, 1.2, unit="%"),
    ]

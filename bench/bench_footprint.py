"""What a session costs in Redis, and what the PIN guessing budgets allow.

- Redis bytes per 10-minute session: ``SESSIONS`` sessions each get a PIN and 40 heartbeats 15 s apart (client
  time; 10 minutes of a waiting customer), posted to a registry; once its outbox is drained, Redis's
  ``used_memory`` growth divided by the sessions (every key a session adds: its hash, history, dedupe set, PIN,
  timers and index entries). Goal < 2 KB.
- The chance to hit one of 100 live PINs within an hour with 10 agent keys from one IP, from the token service's
  budgets (unknown PINs per key and per IP per window) over Zoom's 6-digit PIN space. Goal: at most what the
  documented default caps give.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import aiohttp
from redis.asyncio import Redis

from .bench_beacons import SECRET, create_sessions
from .harness import BenchEnv, Result, at_most

SESSIONS = 101  # bench_beacons' sessions
HEARTBEATS = 40  # 10 minutes at one per 15 s
PER_POST = 10
PIN_SPACE = 10**6
LIVE_PINS = 100
AGENT_KEYS = 10
HOURS = 1.0
TARGET_BYTES = 2048


def guess_probability_from_caps(
    *, per_key: int, per_ip: int, window_s: float, keys: int, live_pins: int, hours: float, pin_space: int
) -> float:
    """Chance that ``keys`` keys behind one IP hit one of ``live_pins`` live PINs within ``hours``.

    Every guess is a distinct PIN at best for the attacker; the IP cap binds once ``keys * per_key`` exceeds it.
    """
    guesses = min(keys * per_key, per_ip) * hours * 3600 / window_s
    return float(1 - (1 - live_pins / pin_space) ** guesses)


def _guess_probability() -> tuple[float, str]:
    from token_service import limits
    from token_service.settings import Settings

    shared = getattr(limits, "guess_probability", None)
    if callable(shared):
        # The token service's own figure, from the budgets it enforces.
        value = cast(Callable[..., float], shared)(live_pins=LIVE_PINS, keys=AGENT_KEYS, hours=HOURS)
        return value, "token_service.limits"
    fields: dict[str, Any] = {name: f.default for name, f in Settings.model_fields.items()}
    value = guess_probability_from_caps(
        per_key=fields["pin_failures_per_agent"],
        per_ip=fields["pin_failures_per_ip"],
        window_s=fields["pin_window_s"],
        keys=AGENT_KEYS,
        live_pins=LIVE_PINS,
        hours=HOURS,
        pin_space=PIN_SPACE,
    )
    return value, "local calc from default caps"


async def _session_bytes(env: BenchEnv) -> float:
    registry = await env.start_service("session_registry", {"SESSION_TOKEN_SECRET": SECRET})
    redis = Redis.from_url(env.redis_url)
    try:
        before = int((await redis.info("memory"))["used_memory"])
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
        # Polling another process's progress: there is no event to await.
        for _ in range(600):
            if not await redis.xlen("reg:outbox"):
                break
            await asyncio.sleep(0.05)
        after = int((await redis.info("memory"))["used_memory"])
    finally:
        await redis.aclose()
    return (after - before) / len(sessions)


async def run(env: BenchEnv) -> list[Result]:
    per_session = await _session_bytes(env)
    chance, source = _guess_probability()
    return [
        at_most("Redis bytes per 10-minute session (15 s heartbeats)", per_session, TARGET_BYTES, unit="B"),
        Result(
            f"chance to hit 1 of {LIVE_PINS} live PINs in 1 h, {AGENT_KEYS} keys, 1 IP ({source})", chance * 100, "%"
        ),
    ]

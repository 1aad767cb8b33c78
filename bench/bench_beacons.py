"""Beacon ingest: events/s accepted by one registry process, single-event beacons and batches of 10, and p99.

Every request carries new event ids (wrk's ``request`` hook numbers them), spread over 101 sessions that alternate
``agent_joined`` / ``agent_left``, so every event is a real transition: dedupe, state change, history entry and an
outbox entry that the same process then publishes to JetStream. After the load, the time the outbox takes to drain
is reported too (the publisher shares the process and the two cores with the ingest).

Each load runs twice: with this process publishing its outbox (the targets apply to this), and with every
partition's publishing lease held elsewhere ("ingest only").

Scale-out: wrk saturates one registry, then two (one wrk each, beacons spread over both, each replica publishing
the partitions it holds); the figure is the rate at which JetStream's ``COBROWSE`` stream grows during the load
(published, not just accepted), and the ratio of the two, measured in the same run.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import nats
from nats.js import JetStreamContext
from redis.asyncio import Redis

from session_registry.keyspaces import Keyspaces
from session_registry.settings import Settings
from shared.messaging import REGISTRY_CREATE, STREAM, CreatedSession, CreateSession
from shared.rpc import call

from .harness import BenchEnv, Result, at_least, at_most
from .load import LoadResult, run_wrk

SECRET = "bench-session-token-secret-0123456789"
SESSIONS = 101
CONNECTIONS = 16
HEADERS = {"Content-Type": "text/plain;charset=UTF-8"}
ROUNDS = 2
# The registry's keys with its default settings (what the benchmark runs).
KEYS = Keyspaces.build("reg:", partitions=Settings.model_fields["partitions"].default, pin_bucket_drop=2)
LEASES = [KEYS.partition.key(base, "lease") for base in KEYS.bases()]
OUTBOXES = [KEYS.partition.key(base, "outbox") for base in KEYS.bases()]


async def hold_leases(redis: Redis, for_s: float) -> None:
    """As if another replica held every partition's publishing lease: the registry only ingests."""
    for key in LEASES:
        await redis.set(key, "bench", px=int(for_s * 1000))


async def release_leases(redis: Redis) -> None:
    for key in LEASES:
        if await redis.get(key) == b"bench":
            await redis.delete(key)


_REQUEST = """
local sessions = {sessions}
local names = {{"agent_joined", "agent_left"}}
local batch = {batch}
local prefix = "{prefix}"
-- Each session is one page, numbering its own events 1, 2, 3, ... as beacon.js does (a count shared by every
-- session left a gap in each page's numbering at every beacon, which the registry then tracked as missing events).
-- Every load continues the pages' numbering: the registry dedupes by each page's (ts, seq) high-water mark. ts is
-- the load's start (ms), never ahead of the clock: a ts counted up per event ran seconds ahead of it, and the next
-- load's events then looked older than the mark (from the page before) and were all refused as repeats. seq starts
-- at the load's start in µs, above every earlier load's.
local ts = {ts}
local seq0 = {seq0}
local counter = 0
local sent = {{}}
request = function()
  counter = counter + 1
  local k = (counter % #sessions) + 1
  local s = sessions[k]
  local visit = (sent[k] or 0) + 1
  sent[k] = visit
  local events = {{}}
  for i = 1, batch do
    local n = (visit - 1) * batch + i
    -- joins and leaves alternate, so that every event is a real transition
    events[i] = string.format('{{"id":"%s-%d-%d","name":"%s","ts":%d,"seq":%d,"payload":{{}}}}',
      prefix, k, n, names[n % 2 + 1], ts, seq0 + n)
  end
  return wrk.format(nil, nil, nil, string.format('{{"session_id":"%s","token":"%s","events":[%s]}}',
    s[1], s[2], table.concat(events, ",")))
end
"""


async def create_sessions(env: BenchEnv, url: str) -> list[CreatedSession]:
    nc = await nats.connect(env.nats_url)
    try:
        created = [
            await call(nc, REGISTRY_CREATE, CreateSession(customer_id=f"c{i}"), CreatedSession) for i in range(SESSIONS)
        ]
    finally:
        await nc.close()
    async with aiohttp.ClientSession() as http:
        for i, c in enumerate(created):
            event = {"id": f"pin{i}", "name": "pincode_updated", "ts": 1, "seq": 0, "payload": {"pinCode": f"{i:06d}"}}
            body = {"session_id": c.session.session_id, "token": c.beacon_token, "event": event}
            async with http.post(url + "/beacons", json=body) as response:
                response.raise_for_status()
    return created


async def beacon_load(
    env: BenchEnv, url: str, sessions: list[CreatedSession], batch: int, duration_s: float
) -> LoadResult:
    table = "{" + ",".join(f'{{"{s.session.session_id}","{s.beacon_token}"}}' for s in sessions) + "}"
    now_us = time.time_ns() // 1000
    script = _REQUEST.format(sessions=table, batch=batch, prefix=f"b{batch}-{now_us}", ts=now_us // 1000, seq0=now_us)
    return await run_wrk(
        url + "/beacons",
        work_dir=env.work_dir,
        body=b"",
        method="POST",
        headers=HEADERS,
        connections=CONNECTIONS,
        duration_s=duration_s,
        request_lua=script,
    )


async def drain_s(redis: Redis, started: float, timeout_s: float = 120.0) -> float:
    """Seconds from ``started`` until the outbox is empty (the publisher has caught up)."""
    deadline = time.monotonic() + timeout_s
    # Polling another process's progress: there is no event to await.
    while time.monotonic() < deadline:  # noqa: ASYNC110
        if not sum([await redis.xlen(key) for key in OUTBOXES]):
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _measure(
    env: BenchEnv, url: str, sessions: list[CreatedSession], redis: Redis, batch: int
) -> dict[str, float]:
    """Ingest with this process publishing its outbox, then with the lease held elsewhere (ingest only).

    The two alternate for ``ROUNDS`` rounds and the best round of each counts, so that noise from other processes
    on the machine hits both alike.
    """
    full: list[tuple[LoadResult, float]] = []
    alone: list[LoadResult] = []
    for _ in range(ROUNDS):
        result = await beacon_load(env, url, sessions, batch, env.duration_s)
        full.append((result, await drain_s(redis, time.monotonic())))
        # As if another replica held the publishing leases: what a replica that only ingests can take.
        await hold_leases(redis, env.duration_s + 30)
        alone.append(await beacon_load(env, url, sessions, batch, env.duration_s))
        await release_leases(redis)
        await drain_s(redis, time.monotonic())
    best, drained = max(full, key=lambda pair: pair[0].rps)
    best_alone = max(alone, key=lambda r: r.rps)
    return {
        "events/s": best.rps * batch,
        "p50": best.p50_ms,
        "p99": best.p99_ms,
        "errors": float(sum(r.errors for r, _ in full) + sum(r.errors for r in alone)),
        "drain": drained,
        "alone events/s": best_alone.rps * batch,
        "alone p99": best_alone.p99_ms,
    }


async def published_per_s(
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


async def publishers(redis: Redis, count: int, timeout_s: float = 30.0) -> None:
    """Wait until ``count`` replicas hold partitions (a lease names its replica)."""
    deadline = time.monotonic() + timeout_s
    # Polling other processes' leases: there is no event to await.
    while len({holder for key in LEASES if (holder := await redis.get(key))}) < count:  # noqa: ASYNC110
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} registries never held partitions")
        await asyncio.sleep(0.1)


async def _scale_out(env: BenchEnv, first: str, sessions: list[CreatedSession], redis: Redis) -> tuple[float, float]:
    """Events/s published with this one registry, then with a second one beside it."""
    nc = await nats.connect(env.nats_url)
    try:
        await drain_s(redis, time.monotonic())
        one = await published_per_s(env, nc.jetstream(), [first], sessions)
        second = await env.start_service("session_registry", {"SESSION_TOKEN_SECRET": SECRET})
        await publishers(redis, 2)
        await drain_s(redis, time.monotonic())
        two = await published_per_s(env, nc.jetstream(), [first, second], sessions)
    finally:
        await nc.drain()
    return one, two


async def run(env: BenchEnv) -> list[Result]:
    url = await env.start_service("session_registry", {"SESSION_TOKEN_SECRET": SECRET})
    sessions = await create_sessions(env, url)
    redis = Redis.from_url(env.redis_url)
    try:
        await beacon_load(env, url, sessions, 1, 1)  # warm-up
        await drain_s(redis, time.monotonic())
        single = await _measure(env, url, sessions, redis, 1)
        batched = await _measure(env, url, sessions, redis, 10)
        one, two = await _scale_out(env, url, sessions, redis)
    finally:
        await redis.aclose()
    return [
        at_least("single-event beacons", single["events/s"], 5000, unit="beacons/s"),
        at_most("single-event p99", single["p99"], 20, unit="ms"),
        Result("single-event p50", single["p50"], "ms"),
        Result("single: outbox drained after", single["drain"], "s"),
        Result("single, ingest only", single["alone events/s"], "beacons/s"),
        Result("single, ingest only p99", single["alone p99"], "ms"),
        at_least("batches of 10", batched["events/s"], 20000, unit="events/s"),
        at_most("batch p99", batched["p99"], 20, unit="ms"),
        Result("batch p50", batched["p50"], "ms"),
        Result("batch: outbox drained after", batched["drain"], "s"),
        Result("batch, ingest only", batched["alone events/s"], "events/s"),
        Result("batch, ingest only p99", batched["alone p99"], "ms"),
        Result("errors (non-2xx, socket)", single["errors"] + batched["errors"]),
        Result("events/s published to JetStream, 1 registry", one, "events/s"),
        Result("events/s published to JetStream, 2 registries", two, "events/s"),
        Result("events/s published, 2 / 1 registries", two / one),
    ]

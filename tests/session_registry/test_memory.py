"""Issue 8: a session's Redis footprint is bounded whatever its length, and dedupe stays exact: a repeat is
counted once as a duplicate, a late (out-of-order) event is applied once."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import pytest

from .conftest import KEYS, ev, open_session

LIMIT_BYTES = 2048
HEARTBEAT_MS = 15_000


async def footprint(redis, session_id: str) -> int:
    """``MEMORY USAGE`` over every key of the session."""
    keys = [key async for key in redis.scan_iter(KEYS.session(session_id) + "*")]
    return sum([await redis.memory_usage(key, samples=0) or 0 for key in keys])


class Page:
    """A page as beacon.js numbers its events: seq one higher each time, ts its clock (driven, not slept)."""

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        self.now = int(time.time() * 1000)

    def event(self, name: str, payload: dict[str, Any] | None = None, *, after_ms: int = 100) -> dict[str, Any]:
        self.seq += 1
        self.now += after_ms
        return {"id": uuid.uuid4().hex, "name": name, "ts": self.now, "seq": self.seq, "payload": payload or {}}


async def test_a_long_session_stays_under_2_kb(new_session, redis) -> None:
    session = await new_session()
    page = Page()
    await session.beacon(page.event("pincode_updated", {"pinCode": "350001"}), page.event("session_started"))
    await session.beacon(page.event("agent_joined"))
    for _ in range(40):  # ten minutes of heartbeats
        await session.beacon(page.event("heartbeat", after_ms=HEARTBEAT_MS))
    ten_minutes = await footprint(redis, session.id)
    for _ in range(200):  # the rest of an hour
        await session.beacon(page.event("heartbeat", after_ms=HEARTBEAT_MS))
    hour = await footprint(redis, session.id)
    assert ten_minutes < LIMIT_BYTES and hour < LIMIT_BYTES, (ten_minutes, hour)
    assert hour - ten_minutes < 64  # heartbeats cost nothing that grows
    await session.beacon(page.event("agent_left"), page.event("session_ended"))
    assert await footprint(redis, session.id) < LIMIT_BYTES
    fields = await redis.hgetall(KEYS.session(session.id))
    assert fields["state"] == "ended" and "hw_seq" not in fields and "page_ts" not in fields  # the summary only


async def test_an_ended_session_shrinks_to_its_summary(new_session, redis, client) -> None:
    session = await new_session()
    page = Page()
    for i in range(30):  # an eventful session: every event a history entry
        await session.beacon(page.event("agent_joined" if i % 2 else "agent_left"))
    live = await footprint(redis, session.id)
    await session.beacon(page.event("session_ended"))
    ended = await footprint(redis, session.id)
    assert ended < LIMIT_BYTES < live, (live, ended)
    assert await redis.llen(KEYS.history(session.id)) == 5


async def test_repeats_and_late_events_are_each_applied_exactly_once(new_session, redis) -> None:
    session = await new_session()
    page = Page()
    first = page.event("pincode_updated", {"pinCode": "350002"})
    joins = [page.event("agent_left" if i % 2 else "agent_joined") for i in range(20)]
    beats = [page.event("heartbeat", after_ms=HEARTBEAT_MS) for _ in range(20)]
    sent = [first, *joins, *beats]
    shuffled = sent[1:]
    random.Random(7).shuffle(shuffled)
    # out of order, each sent twice (a retried beacon), in batches of up to five
    stream = [first, *[e for e in shuffled for _ in (0, 1)]]
    accepted = duplicates = 0
    for start in range(0, len(stream), 5):
        body = await session.beacon(*stream[start : start + 5])
        accepted += body["accepted"]
        duplicates += body["duplicates"]
    assert (accepted, duplicates) == (len(sent), len(sent) - 1)
    assert await redis.hmget(KEYS.session(session.id), "aj_b", "al_b") == ["10", "10"]
    again = await session.beacon(*sent)
    assert (again["accepted"], again["duplicates"]) == (0, len(sent))
    assert await redis.hget(KEYS.session(session.id), "gaps") == ""  # every late event arrived: no run left


async def test_late_events_far_behind_are_still_applied_once(new_session, redis) -> None:
    session = await new_session()
    page = Page()
    early = [page.event("agent_joined"), page.event("agent_left")]
    for _ in range(5):  # 500 events overtook them
        await session.beacon(*[page.event("heartbeat") for _ in range(100)])
    await session.beacon(page.event("agent_joined"))
    assert await redis.hget(KEYS.session(session.id), "gaps") == "1-2"
    body = await session.beacon(*early, *early)
    assert (body["accepted"], body["duplicates"]) == (2, 2)
    assert await redis.hmget(KEYS.session(session.id), "aj_b", "al_b") == ["2", "1"]


async def test_a_reloaded_page_without_storage_counts_again_from_one(new_session, redis) -> None:
    session = await new_session()
    old = Page()
    await session.beacon(*[old.event("agent_joined") for _ in range(5)])
    reloaded = Page(seq=0)
    reloaded.now = old.now + 1000
    body = await session.beacon(reloaded.event("agent_left"), reloaded.event("heartbeat"))
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert await redis.hmget(KEYS.session(session.id), "aj_b", "al_b") == ["5", "1"]
    # a page that sent one event, reloaded: its first event has the same seq, but it is another event
    once = await new_session()
    first_page = Page()
    await once.beacon(first_page.event("agent_joined"))
    second_page = Page()
    second_page.now = first_page.now + 1000
    assert (await once.beacon(second_page.event("agent_left")))["accepted"] == 1
    # a late event of the old page still in flight is a repeat or is lost: never applied twice
    late = await session.beacon(old.event("agent_joined", after_ms=-10_000))
    assert late["accepted"] + late["duplicates"] == 1


async def test_webhook_and_api_ids_are_deduplicated_too(new_session, redis) -> None:
    session = await new_session()
    joined = ev("agent_joined", seq=0)  # a beacon without a seq falls back on its id
    assert (await session.beacon(joined))["accepted"] == 1
    assert (await session.beacon(joined))["duplicates"] == 1


@pytest.mark.parametrize("seed", range(8))
async def test_any_order_and_any_repeats_apply_each_event_once(seed, start_registry, nc, redis) -> None:
    """Generated schedules: 60 page events, each sent one to three times, shuffled, in batches of 1-10."""
    rng = random.Random(seed)
    registry = await start_registry(max_agents=100)
    session = await open_session(nc, registry)
    page = Page()
    names = [rng.choice(["agent_joined", "agent_left", "heartbeat", "session_error"]) for _ in range(60)]
    sent = [page.event(name, {"code": 1} if name == "session_error" else None) for name in names]
    stream = [e for e in sent for _ in range(rng.randint(1, 3))]
    rng.shuffle(stream)
    accepted = duplicates = 0
    while stream:
        size = rng.randint(1, 10)
        body = await session.beacon(*stream[:size])
        stream = stream[size:]
        accepted += body["accepted"]
        duplicates += body["duplicates"]
    assert accepted == len(sent)
    counts = await redis.hmget(KEYS.session(session.id), "aj_b", "al_b")
    assert [int(c or 0) for c in counts] == [names.count("agent_joined"), names.count("agent_left")]
    assert await redis.hget(KEYS.session(session.id), "gaps") == ""  # what it cost while out of order is gone

"""Two registry instances on one Redis: each timeout fires exactly once, concurrent beacons lose no update."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared.messaging import SessionState, Source

from .conftest import KEYS, ev, open_session, partition_key

pytestmark = pytest.mark.cluster

SHORT = 0.3


async def two_registries(start_registry, **durations):
    return await start_registry(**durations), await start_registry(**durations)


CASES = {
    "no_pin": ({"no_pin_timeout_s": SHORT}, [], SessionState.CREATED, "no_pin_timeout"),
    "waiting": ({"waiting_timeout_s": SHORT}, ["pin"], SessionState.WAITING, "no_agent_timeout"),
    "reconnect": (
        {"reconnect_window_s": SHORT},
        ["pin", "page_hidden"],
        SessionState.RECONNECTING,
        "abandoned",
    ),
    "agent_wait": (
        {"agent_wait_timeout_s": SHORT},
        ["pin", "agent_joined", "session_reconnecting"],
        SessionState.RECONNECTING,
        "agent_wait_timeout",
    ),
    # heartbeat silence holds the session (reconnecting), then the reconnect window abandons it
    "heartbeat": (
        {"heartbeat_timeout_s": SHORT, "reconnect_window_s": SHORT},
        ["pin"],
        SessionState.RECONNECTING,
        "abandoned",
    ),
}
TIMER_OF = {"heartbeat": "reconnect"}  # the timer that ends a session the heartbeat timer put away


@pytest.mark.parametrize("kind", list(CASES))
async def test_each_timeout_fires_once_across_two_instances(kind, start_registry, nc, events, redis) -> None:
    durations, steps, state_before, reason = CASES[kind]
    first, second = await two_registries(start_registry, **durations)
    session = await open_session(nc, first)
    beacons = [ev("pincode_updated", {"pinCode": "700001"}) if s == "pin" else ev(s) for s in steps]
    if beacons:
        await session.beacon(*beacons)
    (ended,) = await events.wait(session.id, "ended")
    assert ended.source is Source.TIMER
    assert (ended.prev_state, ended.session.state, ended.session.ended_reason) == (
        state_before,
        SessionState.ENDED,
        reason,
    )
    assert ended.data == {"reason": reason, "timer": TIMER_OF.get(kind, kind)}
    history = [json.loads(h) for h in await redis.lrange(KEYS.history(session.id), 0, -1)]
    assert [h["type"] for h in history].count("ended") == 1
    assert not [m for m in await redis.zrange(partition_key(session.id, "timers"), 0, -1) if m.startswith(session.id)]
    assert second is not first


async def test_progress_disarms_and_rearms_timers(client, new_session, redis) -> None:
    async def armed(session_id: str) -> set[str]:
        return {
            m.split("|")[1]
            for m in await redis.zrange(partition_key(session_id, "timers"), 0, -1)
            if m.startswith(session_id)
        }

    session = await new_session()
    assert await armed(session.id) == {"no_pin"}
    await session.beacon(ev("pincode_updated", {"pinCode": "700002"}))
    assert await armed(session.id) == {"waiting", "heartbeat"}
    await session.beacon(ev("agent_joined"))
    assert await armed(session.id) == {"heartbeat"}
    await session.beacon(ev("page_hidden"))
    assert await armed(session.id) == {"agent_wait"}
    await session.beacon(ev("agent_left"))
    assert await armed(session.id) == {"reconnect"}
    await session.beacon(ev("heartbeat"))  # a page that beats again is back
    assert await armed(session.id) == {"waiting", "heartbeat"}
    await session.beacon(ev("session_ended"))
    assert await armed(session.id) == set()


async def test_a_zero_duration_disables_a_timer(start_registry, nc, redis) -> None:
    registry = await start_registry(no_pin_timeout_s=0)
    session = await open_session(nc, registry)
    assert not [m for m in await redis.zrange(partition_key(session.id, "timers"), 0, -1) if m.startswith(session.id)]


async def test_two_instances_posting_for_one_session_lose_no_update(start_registry, nc, redis) -> None:
    first, second = await start_registry(max_agents=100), await start_registry(max_agents=100)
    session = await open_session(nc, first)
    await session.beacon(ev("pincode_updated", {"pinCode": "700003"}))
    other = session.via(second)
    beacons = [
        (session if i % 2 else other).beacon(ev("agent_joined" if i % 4 < 2 else "agent_left")) for i in range(40)
    ]
    await asyncio.gather(*beacons)
    assert await redis.hmget(KEYS.session(session.id), "aj_b", "al_b") == ["20", "20"]
    history = await redis.lrange(KEYS.history(session.id), 0, -1)
    assert len(history) == 2 + 40  # created, pin_assigned, then every beacon


async def test_heartbeat_silence_holds_the_session_instead_of_ending_it(start_registry, nc, events, redis) -> None:
    registry = await start_registry(heartbeat_timeout_s=SHORT)
    session = await open_session(nc, registry)
    await session.beacon(ev("pincode_updated", {"pinCode": "700004"}), ev("agent_joined"))
    (away,) = await events.wait(session.id, "reconnecting")
    assert away.source is Source.TIMER and away.data == {"cause": "heartbeat_lost", "timer": "heartbeat"}
    assert (away.prev_state, away.session.state, away.session.customers) == (
        SessionState.ACTIVE,
        SessionState.RECONNECTING,
        0,
    )
    # agents present: the agent_wait window runs (60 s here), nothing ends
    assert {
        m.split("|")[1]
        for m in await redis.zrange(partition_key(session.id, "timers"), 0, -1)
        if m.startswith(session.id)
    } == {"agent_wait"}
    await session.beacon(ev("heartbeat"))
    (back,) = await events.wait(session.id, "resumed")
    assert (back.prev_state, back.session.state, back.data) == (
        SessionState.RECONNECTING,
        SessionState.ACTIVE,
        {"cause": "heartbeat"},
    )
    assert not events.of(session.id, "ended")

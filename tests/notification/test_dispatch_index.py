"""The dispatch index stays true: after any sequence of decisions, ``free:<queue>`` holds exactly the agents that are
available, present and with room, scored by their idle time, and ``avail:<queue>`` those available and present."""

from __future__ import annotations

import datetime
import random

import pytest

from notification_service.desks import DESK, DeskMap
from notification_service.store import Store
from shared.messaging import SessionState

from .conftest import view

pytestmark = pytest.mark.cluster

QUEUES = ("q1", "q2", "q3")
MODES = {"q1": "offer", "q2": "offer", "q3": "broadcast"}
AGENTS = [f"agent-{i}" for i in range(6)]
BASE = DESK.base("default")


def _key(shape: str, *args: object) -> str:
    return DESK.key(BASE, shape, *args)


async def _expected(redis) -> tuple[dict[str, dict[str, float]], dict[str, set[str]]]:
    free: dict[str, dict[str, float]] = {q: {} for q in QUEUES}
    avail: dict[str, set[str]] = {q: set() for q in QUEUES}
    for agent in await redis.smembers(_key("agents")):
        h = await redis.hgetall(_key("agent", agent))
        online = h.get("status") == "available" and await redis.exists(_key("conn", agent))
        load = await redis.scard(_key("asessions", agent)) + await redis.scard(_key("aoffers", agent))
        for q in filter(None, h.get("queues", "").split(",")):
            if online:
                avail[q].add(agent)
                if load < int(h.get("capacity", 1)):
                    free[q][agent] = float(h["idle"])
    return free, avail


async def _check(redis, step: str) -> None:
    free, avail = await _expected(redis)
    for q in QUEUES:
        assert dict(await redis.zrange(_key("free", q), 0, -1, withscores=True)) == free[q], f"free:{q} after {step}"
        assert await redis.smembers(_key("avail", q)) == avail[q], f"avail:{q} after {step}"


async def test_every_decision_keeps_the_index_true(redis):
    store = Store(redis, DeskMap({}), retention_s=3600, stats_timezone=datetime.UTC)
    rng = random.Random(11)
    conns: dict[str, str] = {}
    versions: dict[str, int] = {}
    states: dict[str, SessionState] = {}

    async def event(sid: str, state: SessionState, queue: str) -> None:
        versions[sid] = versions.get(sid, 0) + 1
        prev = states.get(sid)
        states[sid] = state
        session = view(sid, state, queue=queue, version=versions[sid])
        await store.session_event(session, prev.value if prev else "created", 60, MODES[queue], 10)

    for agent in AGENTS:  # everyone starts at the desk; the walk takes them away and back
        conns[agent] = f"conn-{agent}"
        await store.connect("default", agent, conns[agent], agent, 600)
        await store.set_status("default", agent, "available", list(QUEUES), 2)
    claims, offers = 0, 0
    for step in range(500):
        agent = rng.choice(AGENTS)
        sids = sorted(states)
        sid = rng.choice(sids) if sids else ""
        queue = rng.choice(QUEUES)
        op = rng.choice(
            ["connect", "gone", "status", "status", "waiting", "waiting", "waiting", "claim", "claim", "claim"]
            + ["decline", "release", "end", "away", "back", "lapse", "dispatch"]
        )
        if op == "connect":
            conns[agent] = f"conn-{step}"
            await store.connect("default", agent, conns[agent], agent, 600)
        elif op == "gone" and agent in conns:
            await store.gone("default", agent, conns.pop(agent))
        elif op == "status":
            status = rng.choice(["available", "available", "away"])
            await store.set_status("default", agent, status, rng.sample(QUEUES, rng.randint(1, 3)), rng.randint(1, 3))
        elif op == "waiting":
            await event(f"s{step}", SessionState.WAITING, queue)
        elif op in ("claim", "decline") and sid:
            sid = rng.choice([s for s in sids if states[s] is SessionState.WAITING] or [sid])
            shown = sorted(await redis.smembers(_key("seen", sid)))
            agent = rng.choice(shown) if shown and rng.random() < 0.8 else agent  # mostly agents shown it
            if op == "claim":
                claims += (await store.claim("default", sid, agent)).outcome == "ok"
            else:
                await store.decline("default", sid, agent)
        elif op == "release":
            held = sorted(await redis.smembers(_key("asessions", agent)))
            await store.release("default", rng.choice(held) if held else sid, agent)
        elif op in ("end", "away", "back") and sid:
            state = {"end": SessionState.ENDED, "away": SessionState.RECONNECTING, "back": SessionState.WAITING}[op]
            if states[sid] is not SessionState.ENDED:
                await event(sid, state, await redis.hget(_key("req", sid), "queue") or queue)
        elif op == "lapse":
            for member in await redis.zrange(_key("offers"), 0, 0):
                await store.offer_timeout("default", member)
        elif op == "dispatch":
            await store.dispatch(queue, MODES[queue], 10)
        await _check(redis, f"step {step} ({op})")
        offers = max(offers, await redis.zcard(_key("offers")))

    assert offers > 1 and claims > 5, (offers, claims)  # the walk went through offers and claims, not only refusals

"""Redis state of the notification service: help requests, queues, agents, offer and escalation timers.

Every change that decides something runs as one Lua script (``lua/``), so replicas sharing the Redis never
see half a change: a claim wins once, an offer goes to one agent, a timer fires once. Keys (prefix ``notify:``)::

    req:<sid>          hash   the help request: state (queued|claimed|cancelled|joined|ended), queue, priority,
                              pin, customer_name, enqueued_at, offered_to, claimed_by, escalated, updated
    q:<queue>          zset   queued sids, score = -priority * 1e10 + enqueued_at (best first)
    u:<queue>          zset   the queued sids not on offer right now (what an offer-mode dispatch looks at)
    seen:<sid>         set    agents currently shown the request (they are told when it goes)
    declined:<sid>     set    agents who declined it (never shown it again)
    waits              zset   sid -> time it escalates
    offers             zset   'sid|agent' -> time the offer lapses
    agent:<aid>        hash   name, status (available|away), queues (comma list), capacity
    conn:<aid>         str    id of the agent's live socket; TTL refreshed by the replica holding it
    qagents:<queue>    zset   agents serving the queue -> idle since (longest idle first)
    aseen:<aid>        set    sids the agent is shown;  aoffers:<aid>  set  its pending offers (offer mode)
    asessions:<aid>    set    sids it claimed and still holds (with aoffers: its load against capacity)
    noagents:<queue>   str    set while requests wait and nobody serves the queue
    queues, agents     set    every queue / agent seen;   live  set  sids queued or claimed
    ticket:<t>         str    account id of a single-use dashboard ticket
    stats:<day>:<q>    hash   offered, claimed, timed_out, abandoned, escalated counts of a UTC day
    waited:<day>:<q>   list   wait times of claimed requests that day;  recent:<q>  list  the last 50
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, tzinfo
from importlib import resources
from typing import Any, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from shared.messaging import SessionView

__all__ = ["ClaimResult", "Dispatched", "Shown", "Store", "Withdrawn", "dispatched"]

PREFIX = "notify:"
STATS_TTL_S = 3 * 86400
RECENT_WAITS = 50
SCRIPTS = (
    "release",
    "dispatch",
    "claim",
    "decline",
    "offer_timeout",
    "status",
    "connect",
    "gone",
    "session",
    "cancel",
    "escalate",
    "due",
)


@dataclass(frozen=True)
class Shown:
    """A request shown to an agent by a dispatch (an offer, or one copy of a broadcast)."""

    session_id: str
    agent_id: str
    enqueued_at: float
    customer_name: str


@dataclass(frozen=True)
class Dispatched:
    flag: str  # '', 'no_agents' or 'agents_available'
    serving: int
    shown: list[Shown]


@dataclass(frozen=True)
class Withdrawn:
    session_id: str
    queue: str


@dataclass(frozen=True)
class ClaimResult:
    outcome: str  # ok, already, taken, not_found, gone, not_offered, not_available, at_capacity
    queue: str = ""
    pin: str = ""
    enqueued_at: float = 0.0
    others: tuple[str, ...] = ()
    """Agents who were shown the request (they are told it is taken)."""
    withdrawn: tuple[str, ...] = ()
    """Requests no longer shown to the claimant because it is now full."""


def _pairs(flat: list[str]) -> list[Withdrawn]:
    return [Withdrawn(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def dispatched(flat: list[Any]) -> Dispatched:
    """Decode ``dispatch_queue``'s answer: ``flag, serving, (sid, agent, enqueued_at, name)...``."""
    shown = [Shown(flat[i], flat[i + 1], float(flat[i + 2] or 0), flat[i + 3] or "") for i in range(2, len(flat), 4)]
    return Dispatched(flat[0], int(flat[1]), shown)


class Store:
    def __init__(self, redis: Redis, *, retention_s: int, stats_timezone: tzinfo) -> None:
        self.redis = redis
        self._retention = retention_s
        self._timezone = stats_timezone
        prelude = resources.files(__package__).joinpath("lua/common.lua").read_text()
        self._scripts: dict[str, AsyncScript] = {}
        for name in SCRIPTS:
            body = resources.files(__package__).joinpath(f"lua/{name}.lua").read_text()
            self._scripts[name] = redis.register_script(prelude + body)

    def today(self) -> str:
        """The statistics day: counters start again at midnight in ``stats_timezone``."""
        return datetime.now(self._timezone).strftime("%Y%m%d")

    async def _run(self, name: str, *args: str | int | float) -> list[Any]:
        result = await self._scripts[name](args=[PREFIX, self._retention, *args])
        return cast(list[Any], result)

    # ------------------------------------------------------------------------------------ decisions

    async def session_event(
        self, view: SessionView, prev_state: str, max_wait_s: float, mode: str, offer_timeout_s: float
    ) -> list[Any]:
        """Apply a session event; a new request is dispatched in the same script (see ``dispatched``)."""
        return await self._run(
            "session",
            view.session_id,
            view.state.value,
            prev_state,
            view.pin or "",
            view.queue,
            view.priority,
            view.customer_name,
            repr(view.updated_at),
            max_wait_s,
            mode,
            offer_timeout_s,
            self.today(),
            STATS_TTL_S,
        )

    async def dispatch(self, queue: str, mode: str, offer_timeout_s: float, only: str = "") -> Dispatched:
        return dispatched(await self._run("dispatch", queue, mode, offer_timeout_s, only, self.today(), STATS_TTL_S))

    async def claim(self, session_id: str, agent_id: str) -> ClaimResult:
        flat = await self._run("claim", session_id, agent_id)
        if flat[0] == "already":
            return ClaimResult(flat[0], flat[1], flat[2], float(flat[3]))
        if flat[0] != "ok":
            return ClaimResult(flat[0])
        n = int(flat[4])
        return ClaimResult(flat[0], flat[1], flat[2], float(flat[3]), tuple(flat[5 : 5 + n]), tuple(flat[5 + n :]))

    async def release(self, session_id: str, agent_id: str) -> bool:
        return bool(await self._run("release", session_id, agent_id))

    async def decline(self, session_id: str, agent_id: str) -> str | None:
        flat = await self._run("decline", session_id, agent_id)
        return flat[0] if flat else None

    async def offer_timeout(self, member: str) -> list[Withdrawn]:
        return _pairs(await self._run("offer_timeout", member))

    async def set_status(self, agent_id: str, status: str, queues: list[str], capacity: int) -> list[Withdrawn]:
        return _pairs(await self._run("status", agent_id, status, ",".join(queues), capacity))

    async def connect(self, agent_id: str, conn_id: str, name: str, presence_ttl_s: float) -> dict[str, Any]:
        prev, status, queues, capacity = await self._run("connect", agent_id, conn_id, int(presence_ttl_s * 1000), name)
        return {
            "previous": prev,
            "status": status,
            "queues": [q for q in queues.split(",") if q],
            "capacity": int(capacity),
        }

    async def gone(self, agent_id: str, conn_id: str) -> list[Withdrawn]:
        return _pairs(await self._run("gone", agent_id, conn_id))

    async def cancel(self, session_id: str) -> list[str]:
        return await self._run("cancel", session_id)

    async def escalate(self, session_id: str, action: str, overflow_queue: str, boost: int) -> list[str]:
        return await self._run("escalate", session_id, action, overflow_queue, boost)

    async def due(self, timers: str, lease_s: float, limit: int = 100) -> list[str]:
        return await self._run("due", timers, lease_s, limit)

    async def next_due_in(self) -> float | None:
        """Seconds until the earliest timer is due, on Redis's clock (``None``: no timers)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(f"{PREFIX}offers", 0, 0, withscores=True)
            pipe.zrange(f"{PREFIX}waits", 0, 0, withscores=True)
            (seconds, micros), *rows = await pipe.execute()
        deadlines = [score for row in rows for _, score in row]
        return min(deadlines) - (seconds + micros / 1e6) if deadlines else None

    async def refresh_presence(self, agent_ids: set[str], ttl_s: float) -> None:
        if not agent_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_id in agent_ids:
                pipe.pexpire(f"{PREFIX}conn:{agent_id}", int(ttl_s * 1000))
            await pipe.execute()

    # ------------------------------------------------------------------------------------ reads

    async def request(self, session_id: str) -> dict[str, str]:
        return cast(dict[str, str], await self.redis.hgetall(f"{PREFIX}req:{session_id}"))

    async def position(self, queue: str, session_id: str) -> int | None:
        rank = cast(int | None, await self.redis.zrank(f"{PREFIX}q:{queue}", session_id))
        return None if rank is None else rank + 1

    async def queue_names(self) -> list[str]:
        return sorted(cast(set[str], await self.redis.smembers(f"{PREFIX}queues")))

    async def waiting(self, queue: str) -> list[dict[str, str]]:
        sids = cast(list[str], await self.redis.zrange(f"{PREFIX}q:{queue}", 0, -1))
        return await self._hashes("req", sids)

    async def live_requests(self) -> list[dict[str, str]]:
        sids = sorted(cast(set[str], await self.redis.smembers(f"{PREFIX}live")))
        return await self._hashes("req", sids)

    async def agents(self) -> list[dict[str, Any]]:
        """Every known agent with its presence (``online``) and load (``sessions``, ``offers``)."""
        ids = sorted(cast(set[str], await self.redis.smembers(f"{PREFIX}agents")))
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_id in ids:
                pipe.hgetall(f"{PREFIX}agent:{agent_id}")
                pipe.exists(f"{PREFIX}conn:{agent_id}")
                pipe.scard(f"{PREFIX}asessions:{agent_id}")
                pipe.scard(f"{PREFIX}aoffers:{agent_id}")
            rows = await pipe.execute()
        out = []
        for i, agent_id in enumerate(ids):
            fields, online, sessions, offers = rows[4 * i : 4 * i + 4]
            if fields:
                out.append(
                    {
                        "agent_id": agent_id,
                        "name": fields.get("name", ""),
                        "status": fields.get("status", "away") if online else "offline",
                        "queues": [q for q in fields.get("queues", "").split(",") if q],
                        "capacity": int(fields.get("capacity", 1)),
                        "sessions": int(sessions),
                        "offers": int(offers),
                    }
                )
        return out

    async def claimed(self, agent_id: str) -> list[dict[str, str]]:
        """The live sessions an agent claimed (what its console shows again after a reload)."""
        sids = sorted(cast(set[str], await self.redis.smembers(f"{PREFIX}asessions:{agent_id}")))
        return [
            {"session_id": r["session_id"], "queue": r["queue"], "pin": r.get("pin", "")}
            for r in await self._hashes("req", sids)
            if r.get("state") == "claimed"
        ]

    async def agent_queues(self, agent_id: str) -> list[str]:
        queues = cast(str | None, await self.redis.hget(f"{PREFIX}agent:{agent_id}", "queues"))
        return [q for q in (queues or "").split(",") if q]

    async def no_agents(self, queue: str) -> bool:
        return bool(await self.redis.exists(f"{PREFIX}noagents:{queue}"))

    async def _hashes(self, kind: str, ids: list[str]) -> list[dict[str, str]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in ids:
                pipe.hgetall(f"{PREFIX}{kind}:{item}")
            rows = cast(list[dict[str, str]], await pipe.execute())
        return [row for row in rows if row]

    # ------------------------------------------------------------------------------------ tickets

    async def issue_ticket(self, account_id: str, ttl_s: float) -> str:
        ticket = secrets.token_urlsafe(24)
        await self.redis.set(f"{PREFIX}ticket:{ticket}", account_id, px=int(ttl_s * 1000))
        return ticket

    async def redeem_ticket(self, ticket: str) -> str | None:
        """The account a ticket was issued to; a ticket works once."""
        return cast(str | None, await self.redis.getdel(f"{PREFIX}ticket:{ticket}"))

    # ------------------------------------------------------------------------------------ statistics

    async def count(self, queue: str, field: str, waited_s: float | None = None) -> None:
        day = self.today()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(f"{PREFIX}stats:{day}:{queue}", field, 1)
            pipe.expire(f"{PREFIX}stats:{day}:{queue}", STATS_TTL_S)
            if waited_s is not None:
                pipe.rpush(f"{PREFIX}waited:{day}:{queue}", round(waited_s, 3))
                pipe.expire(f"{PREFIX}waited:{day}:{queue}", STATS_TTL_S)
                pipe.lpush(f"{PREFIX}recent:{queue}", round(waited_s, 3))
                pipe.ltrim(f"{PREFIX}recent:{queue}", 0, RECENT_WAITS - 1)
                pipe.expire(f"{PREFIX}recent:{queue}", STATS_TTL_S)
            await pipe.execute()

    async def day_stats(self, queue: str) -> tuple[dict[str, int], list[float]]:
        day = self.today()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(f"{PREFIX}stats:{day}:{queue}")
            pipe.lrange(f"{PREFIX}waited:{day}:{queue}", 0, -1)
            counts, waits = await pipe.execute()
        return {k: int(v) for k, v in counts.items()}, [float(w) for w in waits]

    async def recent_waits(self, queue: str) -> list[float]:
        return [float(w) for w in cast(list[str], await self.redis.lrange(f"{PREFIX}recent:{queue}", 0, -1))]

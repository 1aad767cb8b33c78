"""Redis state of the notification service: help requests, queues, agents, offer and escalation timers.

Every change that decides something runs as one Lua script (``lua/``), so replicas sharing the Redis never
see half a change: a claim wins once, an offer goes to one agent, a timer fires once. Every script answers one
JSON object, decoded here into a named model. Keys (prefix ``notify:``)::

    req:<sid>          hash   the help request: state (queued|held|claimed|cancelled|joined|ended), queue, priority,
                              pin, customer_name, enqueued_at, offered_to, claimed_by, agent_name, escalated,
                              updated, version (the last session version applied), wait_due (while held)
    tomb:<sid>         str    version of an event applied to a session that has no request (active, ended, ...),
                              so an older `waiting` delivered later never creates one (TTL: retention)
    q:<queue>          zset   queued sids, score = -priority * 1e10 + enqueued_at (best first)
    u:<queue>          zset   the queued sids not on offer right now (what an offer-mode dispatch looks at)
    held:<queue>       zset   held sids (their customer is away), with the score they had in q:<queue>
    seen:<sid>         set    agents currently shown the request (they are told when it goes)
    declined:<sid>     set    agents who declined it (never shown it again)
    waits              zset   sid -> time it escalates
    offers             zset   'sid|agent' -> time the offer lapses
    agent:<aid>        hash   name, status (available|away), queues (comma list), capacity
    conn:<aid>         str    id of the agent's live socket; TTL refreshed by the replica holding it
    qagents:<queue>    zset   agents serving the queue -> idle since (longest idle first)
    avail:<queue>      set    agents available and online serving the queue (maintained by the scripts that
                              change status, presence or queues; corrected by every dispatch of the queue)
    aseen:<aid>        set    sids the agent is shown;  aoffers:<aid>  set  its pending offers (offer mode)
    asessions:<aid>    set    sids it claimed and still holds (with aoffers: its load against capacity)
    noagents:<queue>   str    set while requests wait and nobody serves the queue
    queues, agents     set    every queue / agent seen;   live  set  sids queued or claimed
    outbox             stream QueueEvents written by the scripts with their change (see ``outbox.py``)
    ticket:<t>         str    account id of a single-use dashboard ticket
    stats:<day>:<q>    hash   offered, claimed, timed_out, abandoned, escalated counts of a UTC day
    waited:<day>:<q>   list   wait times of claimed requests that day;  recent:<q>  list  the last 50
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, tzinfo
from importlib import resources
from typing import Any, cast

from redis.commands.core import AsyncScript

from shared.messaging import SessionView, new_event_id
from shared.redis_conn import RedisClient

__all__ = [
    "AgentState",
    "CancelResult",
    "ClaimResult",
    "Dispatched",
    "Escalation",
    "OutboxEntry",
    "RequestView",
    "SessionOutcome",
    "Shown",
    "Store",
    "Withdrawn",
]

PREFIX = "notify:"
OUTBOX_KEY = f"{PREFIX}outbox"
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
    "view",
    "reconcile",
)


def _list(value: Any) -> list[Any]:
    # cjson encodes an empty Lua table as {}.
    return value if isinstance(value, list) else []


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in _list(value))


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

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Dispatched:
        shown = [
            Shown(s["session_id"], s["agent_id"], float(s["enqueued_at"]), s["customer_name"])
            for s in _list(raw.get("shown"))
        ]
        return cls(raw.get("flag", ""), int(raw.get("serving", 0)), shown)


@dataclass(frozen=True)
class Withdrawn:
    session_id: str
    queue: str

    @classmethod
    def decode_all(cls, raw: dict[str, Any]) -> list[Withdrawn]:
        return [cls(w["session_id"], w["queue"]) for w in _list(raw.get("withdrawn"))]


@dataclass(frozen=True)
class OutboxEntry:
    """A QueueEvent a script wrote to the outbox with its change (published by ``outbox.py``)."""

    entry: str
    event_id: str
    subject: str
    data: str

    @classmethod
    def decode(cls, raw: Any) -> OutboxEntry | None:
        if not isinstance(raw, dict) or not raw:
            return None
        return cls(raw["entry"], raw["event_id"], raw["subject"], raw["data"])


@dataclass(frozen=True)
class SessionOutcome:
    """What a session event did to its help request (see ``lua/session.lua``)."""

    kind: str  # queued, left, held, resumed, ended, noop, stale
    queue: str = ""
    reason: str = ""
    """Why a request left: joined, ended, cancelled, abandoned (or the session's ended_reason while held)."""
    seen: tuple[str, ...] = ()
    """Agents who were shown the request (they are told it went)."""
    agent: str = ""
    """The agent that held the claimed session that ended."""
    dispatched: Dispatched | None = None

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> SessionOutcome:
        dispatch = raw.get("dispatch")
        return cls(
            kind=raw["kind"],
            queue=raw.get("queue", ""),
            reason=raw.get("reason", ""),
            seen=_strings(raw.get("seen")),
            agent=raw.get("agent", ""),
            dispatched=Dispatched.decode(dispatch) if isinstance(dispatch, dict) else None,
        )


@dataclass(frozen=True)
class ClaimResult:
    outcome: str  # ok, already, taken, not_found, gone, not_offered, not_available, at_capacity
    queue: str = ""
    pin: str = ""
    enqueued_at: float = 0.0
    waited_s: float = 0.0
    others: tuple[str, ...] = ()
    """Agents who were shown the request (they are told it is taken)."""
    withdrawn: tuple[str, ...] = ()
    """Requests no longer shown to the claimant because it is now full."""
    event: OutboxEntry | None = None

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> ClaimResult:
        return cls(
            outcome=raw["outcome"],
            queue=raw.get("queue", ""),
            pin=raw.get("pin") or "",
            enqueued_at=float(raw.get("enqueued_at", 0)),
            waited_s=float(raw.get("waited_s", 0)),
            others=_strings(raw.get("others")),
            withdrawn=_strings(raw.get("withdrawn")),
            event=OutboxEntry.decode(raw.get("event")),
        )


@dataclass(frozen=True)
class CancelResult:
    outcome: str  # cancelled, not_queued
    state: str = ""
    """The request's state when it was not cancelled ('' when there is no request)."""
    queue: str = ""
    seen: tuple[str, ...] = ()
    event: OutboxEntry | None = None

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> CancelResult:
        return cls(
            outcome=raw["outcome"],
            state=raw.get("state", ""),
            queue=raw.get("queue", ""),
            seen=_strings(raw.get("seen")),
            event=OutboxEntry.decode(raw.get("event")),
        )


@dataclass(frozen=True)
class Escalation:
    action: str  # '' (nothing changed), priority, move
    source: str = ""
    target: str = ""
    priority: int = 0
    seen: tuple[str, ...] = ()

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Escalation:
        return cls(
            action=raw.get("action", ""),
            source=raw.get("from", ""),
            target=raw.get("to", ""),
            priority=int(float(raw.get("priority", 0))),
            seen=_strings(raw.get("seen")),
        )


@dataclass(frozen=True)
class AgentState:
    """An agent's stored state when its socket connects."""

    previous: str
    """Connection id of the socket it had before ('' if none)."""
    status: str
    queues: list[str]
    capacity: int

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> AgentState:
        queues = [q for q in str(raw.get("queues", "")).split(",") if q]
        return cls(raw.get("previous", ""), raw.get("status", "away"), queues, int(raw.get("capacity", 1)))


@dataclass(frozen=True)
class RequestView:
    """A help request as its customer sees it (read by ``lua/view.lua`` in O(1))."""

    state: str
    queue: str
    priority: int
    enqueued_at: float
    escalated: bool
    agent_name: str
    position: int | None
    available: int
    """Agents available and online serving the queue."""
    recent_waits: list[float]

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> RequestView | None:
        if not raw.get("found"):
            return None
        return cls(
            state=raw["state"],
            queue=raw["queue"],
            priority=int(float(raw.get("priority", 0))),
            enqueued_at=float(raw.get("enqueued_at", 0)),
            escalated=bool(raw.get("escalated")),
            agent_name=raw.get("agent_name", ""),
            position=int(raw["position"]) or None,
            available=int(raw.get("available", 0)),
            recent_waits=[float(w) for w in _list(raw.get("recent"))],
        )


class Store:
    def __init__(self, redis: RedisClient, *, retention_s: int, stats_timezone: tzinfo) -> None:
        self.redis = redis
        self._retention = retention_s
        self._timezone = stats_timezone
        prelude = resources.files(__package__).joinpath("lua/common.lua").read_text()
        self._scripts: dict[str, AsyncScript] = {}
        for name in SCRIPTS:
            body = resources.files(__package__).joinpath(f"lua/{name}.lua").read_text()
            # Each script body answers a table; it goes back as one JSON object.
            source = f"{prelude}\nlocal function main()\n{body}\nend\nreturn cjson.encode(main())\n"
            self._scripts[name] = redis.register_script(source)

    def today(self) -> str:
        """The statistics day: counters start again at midnight in ``stats_timezone``."""
        return datetime.now(self._timezone).strftime("%Y%m%d")

    async def _run(self, name: str, *args: str | int | float) -> dict[str, Any]:
        raw = await self._scripts[name](args=[PREFIX, self._retention, *args])
        return cast(dict[str, Any], json.loads(raw))

    # ------------------------------------------------------------------------------------ decisions

    async def session_event(
        self, view: SessionView, prev_state: str, max_wait_s: float, mode: str, offer_timeout_s: float
    ) -> SessionOutcome:
        """Apply a session event in the session's order; a new request is dispatched in the same script."""
        raw = await self._run(
            "session",
            view.session_id,
            view.state.value,
            prev_state,
            view.pin or "",
            view.queue,
            view.priority,
            view.customer_name,
            repr(view.updated_at),
            view.version,
            view.ended_reason or "",
            max_wait_s,
            mode,
            offer_timeout_s,
            self.today(),
            STATS_TTL_S,
        )
        return SessionOutcome.decode(raw)

    async def dispatch(self, queue: str, mode: str, offer_timeout_s: float, only: str = "") -> Dispatched:
        raw = await self._run("dispatch", queue, mode, offer_timeout_s, only, self.today(), STATS_TTL_S)
        return Dispatched.decode(raw)

    async def claim(self, session_id: str, agent_id: str) -> ClaimResult:
        return ClaimResult.decode(await self._run("claim", session_id, agent_id, new_event_id()))

    async def release(self, session_id: str, agent_id: str) -> bool:
        return bool((await self._run("release", session_id, agent_id))["queue"])

    async def decline(self, session_id: str, agent_id: str) -> str | None:
        return (await self._run("decline", session_id, agent_id))["queue"] or None

    async def offer_timeout(self, member: str) -> list[Withdrawn]:
        return Withdrawn.decode_all(await self._run("offer_timeout", member))

    async def set_status(self, agent_id: str, status: str, queues: list[str], capacity: int) -> list[Withdrawn]:
        return Withdrawn.decode_all(await self._run("status", agent_id, status, ",".join(queues), capacity))

    async def connect(self, agent_id: str, conn_id: str, name: str, presence_ttl_s: float) -> AgentState:
        return AgentState.decode(await self._run("connect", agent_id, conn_id, int(presence_ttl_s * 1000), name))

    async def gone(self, agent_id: str, conn_id: str) -> list[Withdrawn]:
        return Withdrawn.decode_all(await self._run("gone", agent_id, conn_id))

    async def cancel(self, session_id: str) -> CancelResult:
        return CancelResult.decode(await self._run("cancel", session_id, new_event_id()))

    async def escalate(self, session_id: str, action: str, overflow_queue: str, boost: int) -> Escalation:
        return Escalation.decode(await self._run("escalate", session_id, action, overflow_queue, boost))

    async def due(self, timers: str, lease_s: float, limit: int = 100) -> list[str]:
        return [str(m) for m in _list((await self._run("due", timers, lease_s, limit)).get("members"))]

    async def view(self, session_id: str) -> RequestView | None:
        """The customer's view of its request, in one script whose work does not grow with agents or queue."""
        return RequestView.decode(await self._run("view", session_id))

    async def reconcile_available(self, queue: str) -> int:
        """Drop agents that lapsed from the queue's available count (see ``lua/reconcile.lua``); returns how many."""
        return int((await self._run("reconcile", queue))["removed"])

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

"""Redis state of the notification service: help requests, queues, agents, offer and escalation timers, by desk.

Every change that decides something runs as one Lua script (``lua/``, through ``shared.scripts``) in the slot of
its desk (``desks.py``), so replicas sharing the Redis never see half a change: a claim wins once, an offer goes to
one agent, a timer fires once. Every script answers one JSON object, decoded into the model named after it
(``replies.py``). Times in Redis are milliseconds. A desk's keys (``notify:{d:<desk>}:`` and then)::

    req:<sid>          hash   the help request: state (queued|held|claimed|cancelled|joined|ended), queue, priority,
                              pin, customer_name, enqueued_at, offered_to, claimed_by, agent_name, escalated,
                              updated, version (the last session version applied), wait_due (while held)
    tomb:<sid>         str    version of an event applied to a session that has no request (active, ended, ...),
                              so an older `waiting` delivered later never creates one (TTL: retention)
    q:<queue>          zset   queued sids, score = -priority * 1e13 + enqueued_at (best first)
    u:<queue>          zset   the queued sids not on offer right now (what an offer-mode dispatch looks at)
    held:<queue>       zset   held sids (their customer is away), with the score they had in q:<queue>
    seen:<sid>         set    agents currently shown the request (they are told when it goes)
    declined:<sid>     set    agents who declined it (never shown it again)
    waits              zset   sid -> time it escalates
    offers             zset   'sid|agent' -> time the offer lapses
    agent:<aid>        hash   name, status (available|away), queues (comma list), capacity, idle (since when)
    conn:<aid>         str    id of the agent's live socket; TTL refreshed by the replica holding it
    avail:<queue>      set    agents available and online serving the queue (what a customer's status counts)
    free:<queue>       zset   of those, the agents with room -> idle since: the dispatch index (longest idle first)
    aseen:<aid>        set    sids the agent is shown;  aoffers:<aid>  set  its pending offers (offer mode)
    asessions:<aid>    set    sids it claimed and still holds (with aoffers: its load against capacity)
    noagents:<queue>   str    set while requests wait and nobody serves the queue
    queues, agents     set    every queue / agent seen;   live  set  sids queued or claimed
    outbox             stream QueueEvents written by the scripts with their change (see ``outbox.py``)
    outbox:lease       str    the desk's outbox publishing lease
    stats:<day>:<q>    hash   offered, claimed, timed_out, abandoned, escalated counts of a day
    waited:<day>:<q>   list   wait times of claimed requests that day (s);  recent:<q>  list  the last 50

The keys outside desks are in ``desks.py``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from datetime import datetime, tzinfo
from importlib import resources
from typing import Any, TypeVar, cast

from shared.messaging import SessionView, new_event_id
from shared.redis_conn import RedisClient
from shared.scripts import Reply, Script, ScriptRunner

from .desks import AGENT_DESK, DESK, SESSION_DESK, TICKETS, DeskMap
from .replies import (
    CancelResult,
    ClaimResult,
    ConnectResult,
    DeclineResult,
    DispatchResult,
    DueResult,
    EscalateResult,
    GoneResult,
    LeaveResult,
    OfferTimeoutResult,
    OverviewResult,
    PresenceResult,
    QueueCounts,
    ReconcileResult,
    ReleaseResult,
    SessionResult,
    StatusResult,
    ViewResult,
)

__all__ = ["STATS_TTL_S", "Store"]

R = TypeVar("R", bound=Reply)

STATS_TTL_S = 3 * 86400
RECENT_WAITS = 50
PRESENCE_BATCH = 500
TIME_FIELDS = ("enqueued_at", "left_at", "claimed_at", "held_at", "released_at", "wait_due")
"""Fields of a request hash that hold a time (ms in Redis; seconds for readers)."""


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _request_row(raw: dict[str, str]) -> dict[str, str]:
    row = dict(raw)
    for name in TIME_FIELDS:
        if row.get(name):
            row[name] = str(float(row[name]) / 1000)
    return row


class Store:
    def __init__(self, redis: RedisClient, desks: DeskMap, *, retention_s: int, stats_timezone: tzinfo) -> None:
        self.redis = redis
        self.desks = desks
        self._retention_ms = retention_s * 1000
        self._timezone = stats_timezone
        self._runner = ScriptRunner(redis)
        script = self._script
        self._session = script("session", SessionResult)
        self._dispatch = script("dispatch", DispatchResult)
        self._claim = script("claim", ClaimResult)
        self._release = script("release", ReleaseResult)
        self._decline = script("decline", DeclineResult)
        self._offer_timeout = script("offer_timeout", OfferTimeoutResult)
        self._status = script("status", StatusResult)
        self._connect = script("connect", ConnectResult)
        self._gone = script("gone", GoneResult)
        self._leave = script("leave", LeaveResult)
        self._cancel = script("cancel", CancelResult)
        self._escalate = script("escalate", EscalateResult)
        self._due = script("due", DueResult)
        self._view = script("view", ViewResult)
        self._reconcile = script("reconcile", ReconcileResult)
        self._overview = script("overview", OverviewResult)
        self._presence = script("presence", PresenceResult)

    def _script(self, name: str, reply: type[R]) -> Script[R]:
        package = resources.files(__package__)
        return self._runner.script(
            name,
            package.joinpath(f"lua/{name}.lua").read_text(),
            reply,
            keyspace=DESK,
            constants={"retention_ms": self._retention_ms, "stats_ttl_ms": STATS_TTL_S * 1000},
            library=package.joinpath("lua/common.lua").read_text(),
        )

    def today(self) -> str:
        """The statistics day: counters start again at midnight in ``stats_timezone``."""
        return datetime.now(self._timezone).strftime("%Y%m%d")

    def base(self, desk: str) -> str:
        return DESK.base(desk)

    def key(self, desk: str, shape: str, *args: object) -> str:
        return DESK.key(DESK.base(desk), shape, *args)

    def _queue_key(self, queue: str, shape: str, *args: object) -> str:
        return self.key(self.desks.of(queue), shape, *args)

    # ------------------------------------------------------------------------------------ decisions

    async def session_event(
        self, view: SessionView, prev_state: str, max_wait_s: float, mode: str, offer_timeout_s: float
    ) -> SessionResult:
        """Apply a session event in the session's order (in the desk of its queue); a new request is dispatched in
        the same script. A waiting session's desk is remembered (``SESSION_DESK``) for its customer's calls, which
        know only the session id: in its own slot, beside the script, so a failure of either retries both."""
        desk = self.desks.of(view.queue)
        apply = self._session(
            DESK.base(desk),
            view.session_id,
            view.state.value,
            prev_state,
            view.pin or "",
            view.queue,
            view.priority,
            view.customer_name,
            _ms(view.updated_at),
            view.version,
            view.ended_reason or "",
            _ms(max_wait_s),
            mode,
            _ms(offer_timeout_s),
            self.today(),
        )
        if view.state.value != "waiting":
            return await apply
        remember = self.redis.set(self._session_desk_key(view.session_id), desk, px=self._retention_ms)
        outcome, _ = await asyncio.gather(apply, remember)
        return outcome

    async def dispatch(self, queue: str, mode: str, offer_timeout_s: float, only: str = "") -> DispatchResult:
        base = DESK.base(self.desks.of(queue))
        return await self._dispatch(base, queue, mode, _ms(offer_timeout_s), only, self.today())

    async def claim(self, desk: str, session_id: str, agent_id: str) -> ClaimResult:
        return await self._claim(DESK.base(desk), session_id, agent_id, new_event_id())

    async def release(self, desk: str, session_id: str, agent_id: str) -> bool:
        return bool((await self._release(DESK.base(desk), session_id, agent_id)).queue)

    async def decline(self, desk: str, session_id: str, agent_id: str) -> str | None:
        return (await self._decline(DESK.base(desk), session_id, agent_id)).queue or None

    async def offer_timeout(self, desk: str, member: str) -> OfferTimeoutResult:
        return await self._offer_timeout(DESK.base(desk), member)

    async def set_status(self, desk: str, agent_id: str, status: str, queues: list[str], capacity: int) -> StatusResult:
        return await self._status(DESK.base(desk), agent_id, status, ",".join(queues), capacity)

    async def connect(self, desk: str, agent_id: str, conn_id: str, name: str, presence_ttl_s: float) -> ConnectResult:
        return await self._connect(DESK.base(desk), agent_id, conn_id, _ms(presence_ttl_s), name)

    async def gone(self, desk: str, agent_id: str, conn_id: str) -> GoneResult:
        return await self._gone(DESK.base(desk), agent_id, conn_id)

    async def leave(self, desk: str, agent_id: str) -> LeaveResult:
        return await self._leave(DESK.base(desk), agent_id)

    async def cancel(self, desk: str, session_id: str) -> CancelResult:
        return await self._cancel(DESK.base(desk), session_id, new_event_id())

    async def escalate(
        self, desk: str, session_id: str, action: str, overflow_queue: str, boost: int
    ) -> EscalateResult:
        return await self._escalate(DESK.base(desk), session_id, action, overflow_queue, boost)

    async def due(self, desk: str, lease_s: float, limit: int = 100) -> DueResult:
        """Lease the desk's due timers to this replica (see ``lua/due.lua``)."""
        return await self._due(DESK.base(desk), _ms(lease_s), limit)

    async def view(self, desk: str, session_id: str) -> ViewResult | None:
        """The customer's view of its request, in one script whose work does not grow with agents or queue."""
        result = await self._view(DESK.base(desk), session_id)
        return result if result.found else None

    async def reconcile_available(self, queue: str) -> int:
        """Drop agents that lapsed from the queue's indexes (see ``lua/reconcile.lua``); returns how many."""
        base = DESK.base(self.desks.of(queue))
        return (await self._reconcile(base, queue)).removed

    async def refresh_presence(self, agents: Iterable[tuple[str, str]], ttl_s: float) -> None:
        """Renew the presence keys of ``(desk, agent id)``s: one script per desk and batch of agents."""
        by_desk: dict[str, list[str]] = {}
        for desk, agent_id in agents:
            by_desk.setdefault(desk, []).append(agent_id)
        calls = [
            self._presence(DESK.base(desk), _ms(ttl_s), *ids[i : i + PRESENCE_BATCH])
            for desk, ids in by_desk.items()
            for i in range(0, len(ids), PRESENCE_BATCH)
        ]
        await asyncio.gather(*calls)

    async def overview(self) -> dict[str, QueueCounts]:
        """Every queue: agents by status, requests waiting, the oldest one's arrival; counted in Redis, per desk."""
        counts: dict[str, QueueCounts] = {}
        for desk in self.desks.names:
            counts.update((await self._overview(DESK.base(desk))).queues)
        return counts

    # ------------------------------------------------------------------------------------ where things are

    def _session_desk_key(self, session_id: str) -> str:
        return SESSION_DESK.key(SESSION_DESK.base(session_id), "desk")

    async def session_desk(self, session_id: str) -> str | None:
        """The desk of a session that waited for an agent (``None``: it never did, or long ago)."""
        return cast(str | None, await self.redis.get(self._session_desk_key(session_id)))

    def _agent_desk_key(self, agent_id: str) -> str:
        return AGENT_DESK.key(AGENT_DESK.base(agent_id), "desk")

    async def agent_desk(self, agent_id: str, default: str) -> str:
        """The desk the agent serves in (``default`` for an agent that never chose one)."""
        return cast(str | None, await self.redis.get(self._agent_desk_key(agent_id))) or default

    async def set_agent_desk(self, agent_id: str, desk: str) -> None:
        # No TTL: an agent comes back to its desk however long it was away (its socket may also outlive any TTL).
        await self.redis.set(self._agent_desk_key(agent_id), desk)

    # ------------------------------------------------------------------------------------ reads

    async def request(self, desk: str, session_id: str) -> dict[str, str]:
        return _request_row(cast(dict[str, str], await self.redis.hgetall(self.key(desk, "req", session_id))))

    async def queue_names(self) -> list[str]:
        names: set[str] = set()
        for desk in self.desks.names:
            names |= cast(set[str], await self.redis.smembers(self.key(desk, "queues")))
        return sorted(names)

    async def waiting(self, queue: str) -> list[dict[str, str]]:
        desk = self.desks.of(queue)
        sids = cast(list[str], await self.redis.zrange(self.key(desk, "q", queue), 0, -1))
        return await self._requests(desk, sids)

    async def live_requests(self) -> list[dict[str, str]]:
        rows = []
        for desk in self.desks.names:
            sids = sorted(cast(set[str], await self.redis.smembers(self.key(desk, "live"))))
            rows += await self._requests(desk, sids)
        return rows

    async def agents(self) -> list[dict[str, Any]]:
        """Every known agent with its presence (``online``) and load (``sessions``, ``offers``)."""
        out = []
        for desk in self.desks.names:
            ids = sorted(cast(set[str], await self.redis.smembers(self.key(desk, "agents"))))
            async with self.redis.pipeline(transaction=False) as pipe:
                for agent_id in ids:
                    pipe.hgetall(self.key(desk, "agent", agent_id))
                    pipe.exists(self.key(desk, "conn", agent_id))
                    pipe.scard(self.key(desk, "asessions", agent_id))
                    pipe.scard(self.key(desk, "aoffers", agent_id))
                rows = await pipe.execute()
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
        return sorted(out, key=lambda agent: str(agent["agent_id"]))

    async def claimed(self, desk: str, agent_id: str) -> list[dict[str, str]]:
        """The live sessions an agent claimed (what its console shows again after a reload)."""
        sids = sorted(cast(set[str], await self.redis.smembers(self.key(desk, "asessions", agent_id))))
        return [
            {"session_id": r["session_id"], "queue": r["queue"], "pin": r.get("pin", "")}
            for r in await self._requests(desk, sids)
            if r.get("state") == "claimed"
        ]

    async def agent_queues(self, desk: str, agent_id: str) -> list[str]:
        queues = cast(str | None, await self.redis.hget(self.key(desk, "agent", agent_id), "queues"))
        return [q for q in (queues or "").split(",") if q]

    async def no_agents(self, queue: str) -> bool:
        return bool(await self.redis.exists(self._queue_key(queue, "noagents", queue)))

    async def _requests(self, desk: str, sids: list[str]) -> list[dict[str, str]]:
        if not sids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(self.key(desk, "req", sid))
            rows = cast(list[dict[str, str]], await pipe.execute())
        return [_request_row(row) for row in rows if row]

    # ------------------------------------------------------------------------------------ tickets

    async def issue_ticket(self, account_id: str, ttl_s: float) -> str:
        ticket = secrets.token_urlsafe(24)
        await self.redis.set(TICKETS.key(TICKETS.base(), "ticket", ticket), account_id, px=_ms(ttl_s))
        return ticket

    async def redeem_ticket(self, ticket: str) -> str | None:
        """The account a ticket was issued to; a ticket works once."""
        return cast(str | None, await self.redis.getdel(TICKETS.key(TICKETS.base(), "ticket", ticket)))

    # ------------------------------------------------------------------------------------ statistics

    async def count(self, queue: str, field: str, waited_s: float | None = None) -> None:
        day = self.today()
        stats, waited, recent = (
            self._queue_key(queue, "stats", day, queue),
            self._queue_key(queue, "waited", day, queue),
            self._queue_key(queue, "recent", queue),
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(stats, field, 1)
            pipe.expire(stats, STATS_TTL_S)
            if waited_s is not None:
                pipe.rpush(waited, round(waited_s, 3))
                pipe.expire(waited, STATS_TTL_S)
                pipe.lpush(recent, round(waited_s, 3))
                pipe.ltrim(recent, 0, RECENT_WAITS - 1)
                pipe.expire(recent, STATS_TTL_S)
            await pipe.execute()

    async def day_stats(self, queue: str) -> tuple[dict[str, int], list[float]]:
        day = self.today()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._queue_key(queue, "stats", day, queue))
            pipe.lrange(self._queue_key(queue, "waited", day, queue), 0, -1)
            counts, waits = await pipe.execute()
        return {k: int(v) for k, v in counts.items()}, [float(w) for w in waits]

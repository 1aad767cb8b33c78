"""The notification scripts' replies: one model per script, named after it, built by ``decode`` from its JSON.

Times arrive in milliseconds (the scripts' one unit) and are seconds here. An empty Lua table arrives as ``{}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

__all__ = [
    "CancelResult",
    "ClaimResult",
    "ConnectResult",
    "DeclineResult",
    "DispatchResult",
    "DueResult",
    "EscalateResult",
    "GoneResult",
    "LeaveResult",
    "OfferTimeoutResult",
    "OverviewResult",
    "QueueCounts",
    "OutboxEntry",
    "PresenceResult",
    "ReconcileResult",
    "ReleaseResult",
    "SessionResult",
    "Shown",
    "StatusResult",
    "ViewResult",
    "Withdrawn",
]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in _list(value))


def _seconds(ms: Any) -> float:
    return float(ms or 0) / 1000


@dataclass(frozen=True)
class Shown:
    """A request shown to an agent by a dispatch (an offer, or one copy of a broadcast)."""

    session_id: str
    agent_id: str
    enqueued_at: float
    customer_name: str


@dataclass(frozen=True)
class DispatchResult:
    flag: str  # '', 'no_agents' or 'agents_available'
    serving: int
    shown: list[Shown]

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        shown = [
            Shown(s["session_id"], s["agent_id"], _seconds(s["enqueued_at"]), s["customer_name"])
            for s in _list(raw.get("shown"))
        ]
        return cls(raw.get("flag", ""), int(raw.get("serving", 0)), shown)


@dataclass(frozen=True)
class Withdrawn:
    session_id: str
    queue: str


def _withdrawn(raw: dict[str, Any]) -> list[Withdrawn]:
    return [Withdrawn(w["session_id"], w["queue"]) for w in _list(raw.get("withdrawn"))]


@dataclass(frozen=True)
class _Withdrawing:
    withdrawn: list[Withdrawn]

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(_withdrawn(raw))


class StatusResult(_Withdrawing):
    """``withdrawn``: what the agent no longer sees (it went away or stopped serving a queue)."""


class OfferTimeoutResult(_Withdrawing):
    """``withdrawn``: everything the agent was shown (empty: the timer was stale)."""


@dataclass(frozen=True)
class GoneResult:
    withdrawn: list[Withdrawn]
    queues: list[str]
    """The queues the agent serves (they may now have nobody serving them)."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(_withdrawn(raw), [q for q in str(raw.get("queues", "")).split(",") if q])


@dataclass(frozen=True)
class LeaveResult:
    held: int
    """Claimed sessions the agent holds in the desk it leaves (then it did not leave)."""
    withdrawn: tuple[Withdrawn, ...] = ()

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(int(raw["held"]), tuple(_withdrawn(raw)))


@dataclass(frozen=True)
class OutboxEntry:
    """A QueueEvent a script wrote to its desk's outbox with its change (published by ``outbox.py``)."""

    entry: str
    event_id: str
    subject: str
    data: str

    @classmethod
    def decode(cls, raw: Any) -> Self | None:
        if not isinstance(raw, dict) or not raw:
            return None
        return cls(raw["entry"], raw["event_id"], raw["subject"], raw["data"])


@dataclass(frozen=True)
class SessionResult:
    """What a session event did to its help request (see ``lua/session.lua``)."""

    kind: str  # queued, left, held, resumed, ended, noop, stale
    queue: str = ""
    reason: str = ""
    """Why a request left: joined, ended, cancelled, abandoned (or the session's ended_reason while held)."""
    seen: tuple[str, ...] = ()
    """Agents who were shown the request (they are told it went)."""
    agent: str = ""
    """The agent that held the claimed session that ended."""
    dispatched: DispatchResult | None = None

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        dispatch = raw.get("dispatch")
        return cls(
            kind=raw["kind"],
            queue=raw.get("queue", ""),
            reason=raw.get("reason", ""),
            seen=_strings(raw.get("seen")),
            agent=raw.get("agent", ""),
            dispatched=DispatchResult.decode(dispatch) if isinstance(dispatch, dict) else None,
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
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(
            outcome=raw["outcome"],
            queue=raw.get("queue", ""),
            pin=raw.get("pin") or "",
            enqueued_at=_seconds(raw.get("enqueued_at")),
            waited_s=_seconds(raw.get("waited_ms")),
            others=_strings(raw.get("others")),
            withdrawn=_strings(raw.get("withdrawn")),
            event=OutboxEntry.decode(raw.get("event")),
        )


@dataclass(frozen=True)
class CancelResult:
    outcome: str  # cancelled, not_queued
    state: str = ""
    """The request's state when it was not cancelled ('' when there is none)."""
    queue: str = ""
    seen: tuple[str, ...] = ()
    event: OutboxEntry | None = None

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(
            outcome=raw["outcome"],
            state=raw.get("state", ""),
            queue=raw.get("queue", ""),
            seen=_strings(raw.get("seen")),
            event=OutboxEntry.decode(raw.get("event")),
        )


@dataclass(frozen=True)
class EscalateResult:
    action: str  # '' (nothing changed), priority, move
    source: str = ""
    target: str = ""
    priority: int = 0
    seen: tuple[str, ...] = ()

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(
            action=raw.get("action", ""),
            source=raw.get("from", ""),
            target=raw.get("to", ""),
            priority=int(float(raw.get("priority", 0))),
            seen=_strings(raw.get("seen")),
        )


@dataclass(frozen=True)
class ConnectResult:
    """An agent's stored state when its socket connects."""

    previous: str
    """Connection id of the socket it had before ('' if none)."""
    status: str
    queues: list[str]
    capacity: int

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        queues = [q for q in str(raw.get("queues", "")).split(",") if q]
        return cls(raw.get("previous", ""), raw.get("status", "away"), queues, int(raw.get("capacity", 1)))


@dataclass(frozen=True)
class DeclineResult:
    queue: str
    """The request's queue ('' when nothing changed)."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(raw.get("queue", ""))


@dataclass(frozen=True)
class ReleaseResult:
    queue: str
    """The session's queue ('' when the agent did not hold it)."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(raw.get("queue", ""))


@dataclass(frozen=True)
class DueResult:
    """The desk's timers leased to this replica, and when the next one is due."""

    offers: list[str]
    """Offer timers, ``sid|agent``."""
    waits: list[str]
    """Escalation timers, session ids."""
    next_in_s: float | None
    """Seconds until the earliest timer left is due (``None``: none)."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        next_ms = float(raw.get("next_ms", -1))
        return cls(
            [str(m) for m in _list(raw.get("offers"))],
            [str(m) for m in _list(raw.get("waits"))],
            None if next_ms < 0 else next_ms / 1000,
        )


@dataclass(frozen=True)
class ReconcileResult:
    removed: int

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(int(raw.get("removed", 0)))


@dataclass(frozen=True)
class ViewResult:
    """A help request as its customer sees it (read by ``lua/view.lua`` in O(1))."""

    found: bool
    state: str = ""
    queue: str = ""
    priority: int = 0
    enqueued_at: float = 0.0
    escalated: bool = False
    agent_name: str = ""
    position: int | None = None
    available: int = 0
    """Agents available and online serving the queue."""
    recent_waits: tuple[float, ...] = ()

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        if not raw.get("found"):
            return cls(False)
        return cls(
            found=True,
            state=raw["state"],
            queue=raw["queue"],
            priority=int(float(raw.get("priority", 0))),
            enqueued_at=_seconds(raw.get("enqueued_at")),
            escalated=bool(raw.get("escalated")),
            agent_name=raw.get("agent_name", ""),
            position=int(raw["position"]) or None,
            available=int(raw.get("available", 0)),
            recent_waits=tuple(float(w) for w in _list(raw.get("recent"))),
        )


@dataclass(frozen=True)
class QueueCounts:
    """One queue in ``overview.lua``'s answer."""

    agents: dict[str, int]
    """Agents serving it by status: available, busy, away, offline."""
    waiting: int
    oldest_s: float | None
    """When the request waiting longest was enqueued (epoch seconds; ``None``: nobody waits)."""
    no_agents: bool


@dataclass(frozen=True)
class OverviewResult:
    queues: dict[str, QueueCounts]

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        queues = raw.get("queues") or {}
        return cls(
            {
                q: QueueCounts(
                    {status: int(n) for status, n in row["agents"].items()},
                    int(row.get("waiting", 0)),
                    _seconds(row["oldest_ms"]) if row.get("oldest_ms") else None,
                    bool(row.get("no_agents")),
                )
                for q, row in queues.items()
            }
        )


@dataclass(frozen=True)
class PresenceResult:
    renewed: int

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(int(raw.get("renewed", 0)))

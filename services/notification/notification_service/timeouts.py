"""Timers of the desks: an offer nobody accepted in time, a request that waited longer than its queue allows.

The timers are sorted sets of each desk in Redis (``waits``, ``offers``); the timer loop (``timers.py``) leases due
ones, so each fires once on one replica, and hands them here. A lease not finished (the replica died) comes due
again for another replica, and the scripts change nothing twice.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from .metrics import OFFER_TIMEOUTS
from .notifier import Notifier
from .replies import Withdrawn
from .settings import Overflow, Settings
from .store import Store

if TYPE_CHECKING:  # intake.py arms the Alarm defined here
    from .intake import Intake

__all__ = ["Alarm", "Timeouts"]

log = structlog.get_logger()


class Alarm:
    """Wakes this replica's timer loop early when a timer it armed is due before the loop's next look."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.next_look = 0.0
        """When the timer loop looks next (it sets this before it waits)."""

    def armed(self, deadline: float) -> None:
        if deadline < self.next_look:
            self.changed.set()


class Timeouts:
    def __init__(self, settings: Settings, store: Store, notifier: Notifier, intake: Intake) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.intake = intake

    async def offer_lapsed(self, desk: str, member: str) -> None:
        withdrawn = (await self.store.offer_timeout(desk, member)).withdrawn
        if not withdrawn:
            return
        session_id, _, agent_id = member.rpartition("|")
        queue = next((w.queue for w in withdrawn if w.session_id == session_id), "")
        log.info("offer_timed_out", session_id=session_id, agent_id=agent_id)
        notify = self.notifier
        for item in withdrawn:
            reason = "timeout" if item.session_id == session_id else "away"
            await notify.send(agent_id, {"type": "offer_revoked", "session_id": item.session_id, "reason": reason})
        await notify.send(agent_id, {"type": "status", "status": "away", "reason": "offer_timeout"})
        OFFER_TIMEOUTS.labels(queue).inc()
        await self.store.count(queue, "timed_out")
        # Published before the offers that follow from it, so readers of the stream see cause before effect.
        await notify.queue_event("offer_timeout", queue, session_id, agent_id)
        await notify.agent_event(desk, "status", agent_id, "away", reason="offer_timeout")
        await self.moved_on(withdrawn)

    async def moved_on(self, withdrawn: list[Withdrawn] | tuple[Withdrawn, ...]) -> None:
        """Dispatch the queues of requests an agent no longer sees."""
        await self.intake.dispatch_all(sorted({w.queue for w in withdrawn if w.queue}))

    async def escalate(self, desk: str, session_id: str) -> None:
        s = self.settings
        # A request moves only within its desk (one slot): a desk without the overflow queue raises priority.
        action = s.overflow_action
        if action is Overflow.MOVE and s.desk_map.of(s.overflow_queue) != desk:
            action = Overflow.PRIORITY
        outcome = await self.store.escalate(desk, session_id, action.value, s.overflow_queue, s.overflow_priority_boost)
        if not outcome.action:
            return
        log.info("request_escalated", session_id=session_id, action=outcome.action, queue=outcome.target)
        await self.notifier.revoke(outcome.seen, session_id, "escalated")
        await self.store.count(outcome.source, "escalated")
        await self.notifier.queue_event(
            "escalated",
            outcome.source,
            session_id,
            action=outcome.action,
            to_queue=outcome.target,
            priority=outcome.priority,
        )
        await self.intake.dispatch(outcome.target)

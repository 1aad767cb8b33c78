"""The help desk's decisions: queue requests, offer them to agents, claims, declines, timeouts, escalations.

Every decision is one script in Redis (``store.py``); this module turns its outcome into frames for agents'
sockets (core NATS ``notify.agent.<id>``, delivered by whichever replica holds the socket) and into
``QueueEvent``/``AgentEvent``s on JetStream. Nothing here keeps state of its own, so any replica can act.

Failure model: frames are best effort (an agent that misses one learns the truth from its next claim or from
``ready`` on reconnect); events never fail the caller once Redis has committed: a claim's and a cancel's event is
written to the outbox by the script itself, other events go to the outbox when JetStream does not take them
(``outbox.py``). A Redis error propagates (the HTTP edge answers 503; the consumer naks; loops retry).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterable
from typing import Any

import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from shared.errors import CobrowseError, Conflict, Forbidden, NotFound, RemoteError
from shared.messaging import (
    REGISTRY_END,
    TOKEN_AGENT_ISSUE,
    AgentEvent,
    AgentToken,
    EndSession,
    IssueAgentToken,
    QueueEvent,
    SessionEvent,
    SessionView,
    agent_inbox,
    agent_subject,
    new_event_id,
    queue_subject,
)
from shared.rpc import call

from .frames import QUEUE_PATTERN
from .metrics import CLAIMS, OFFER_TIMEOUTS, OFFERS, WAIT_SECONDS
from .outbox import Outbox
from .settings import Mode, Settings
from .store import Dispatched, SessionOutcome, Store, Withdrawn

__all__ = ["Desk"]

log = structlog.get_logger()

QUEUE_NAME = re.compile(QUEUE_PATTERN)

# A fresh exception per refusal: raising one shared instance would keep growing its traceback.
_CLAIM_REFUSALS: dict[str, tuple[type[CobrowseError], str, str]] = {
    "taken": (Conflict, "taken", "another agent claimed this request"),
    "not_found": (NotFound, "request_not_found", "no such help request"),
    "gone": (Conflict, "request_gone", "the request is no longer waiting"),
    "not_offered": (Forbidden, "not_offered", "this request was not offered to you"),
    "not_available": (Conflict, "not_available", "set your status to available first"),
    "at_capacity": (Conflict, "at_capacity", "you are at your capacity"),
}


class Desk:
    def __init__(self, settings: Settings, store: Store, nc: NatsClient, js: JetStreamContext) -> None:
        self.settings = settings
        self.store = store
        self.nc = nc
        self.js = js
        self.outbox = Outbox(store.redis, nc, js, lease_s=settings.outbox_lease_s)
        self.timers_changed = asyncio.Event()
        """Set when this replica armed a timer due before its timer loop's next look."""
        self.next_look = 0.0
        """When the timer loop looks next (it sets this before it waits)."""

    # ------------------------------------------------------------------------------------ output

    async def send(self, agent_id: str, frame: dict[str, Any]) -> None:
        try:
            await self.nc.publish(agent_inbox(agent_id), json.dumps(frame).encode())
        except Exception as exc:  # best effort: a lost frame never undoes or fails a committed decision
            log.warning("agent_frame_lost", agent_id=agent_id, frame=frame.get("type"), error=type(exc).__name__)

    async def _revoke(self, agents: Iterable[str], session_id: str, reason: str) -> None:
        for agent_id in agents:
            await self.send(agent_id, {"type": "offer_revoked", "session_id": session_id, "reason": reason})

    async def publish_queue(
        self, type_: str, queue: str, session_id: str, agent_id: str | None = None, **data: Any
    ) -> None:
        event = QueueEvent(
            event_id=new_event_id(), type=type_, queue=queue, session_id=session_id, agent_id=agent_id, data=data
        )
        await self.outbox.publish(queue_subject(queue, type_), event.encode(), event.event_id)

    async def publish_agent(
        self, type_: str, agent_id: str, status: str | None = None, queues: list[str] | None = None, **data: Any
    ) -> None:
        event = AgentEvent(
            event_id=new_event_id(), type=type_, agent_id=agent_id, status=status, queues=queues or [], data=data
        )
        await self.outbox.publish(agent_subject(agent_id, type_), event.encode(), event.event_id)

    # ------------------------------------------------------------------------------------ queueing

    async def on_session_event(self, event: SessionEvent) -> None:
        view = event.session
        queue = view.queue if QUEUE_NAME.fullmatch(view.queue) else self.settings.default_queue
        if view.queue != queue:
            log.warning("queue_name_invalid", session_id=view.session_id)
            view = view.model_copy(update={"queue": queue})
        prev = event.prev_state.value if event.prev_state else ""
        mode = self.settings.mode(queue)
        outcome = await self.store.session_event(
            view, prev, self.settings.max_wait(queue), mode.value, self.settings.offer_timeout_s
        )
        await self._apply(outcome, view, mode)

    async def _apply(self, outcome: SessionOutcome, view: SessionView, mode: Mode) -> None:
        sid = view.session_id
        if outcome.kind == "stale":
            log.info("session_event_stale", session_id=sid, version=view.version)
        elif outcome.kind == "queued" and outcome.dispatched is not None:
            log.info("request_queued", session_id=sid, queue=outcome.queue)
            self._armed(time.time() + self.settings.max_wait(outcome.queue))
            # Offers go out first; the "queued" event is still published before the "offered" ones.
            await self._deliver(outcome.queue, mode, outcome.dispatched, sid, view.priority)
        elif outcome.kind == "left":
            revoke = {"joined": "taken", "cancelled": "cancelled"}.get(outcome.reason, "ended")
            await self._revoke(outcome.seen, sid, revoke)
            await self.publish_queue("left", outcome.queue, sid, reason=outcome.reason)
            if outcome.reason != "joined":
                await self.store.count(outcome.queue, "abandoned")
            await self.dispatch(outcome.queue)
        elif outcome.kind == "held":
            # The customer is away: no agent may be offered it meanwhile; its place is kept (held:<queue>).
            log.info("request_held", session_id=sid, queue=outcome.queue)
            await self._revoke(outcome.seen, sid, "held")
            await self.publish_queue("held", outcome.queue, sid)
            await self.dispatch(outcome.queue)
        elif outcome.kind == "resumed":
            log.info("request_resumed", session_id=sid, queue=outcome.queue)
            await self.publish_queue("resumed", outcome.queue, sid)
            await self.dispatch(outcome.queue)
        elif outcome.kind == "ended" and outcome.agent:
            reason = view.ended_reason or "ended"
            await self.send(outcome.agent, {"type": "session_ended", "session_id": sid, "reason": reason})
            await self.publish_agent("released", outcome.agent, session_id=sid, reason="session_ended")
            await self.dispatch_for(outcome.agent)

    async def dispatch(self, queue: str, only: str = "") -> None:
        """Show the queue's waiting requests to agents with room (``only``: just that new request)."""
        mode = self.settings.mode(queue)
        result = await self.store.dispatch(queue, mode.value, self.settings.offer_timeout_s, only)
        await self._deliver(queue, mode, result)

    async def _deliver(
        self, queue: str, mode: Mode, result: Dispatched, queued: str | None = None, priority: int = 0
    ) -> None:
        """Send a dispatch's offers to the agents, then publish what happened (``queued``: a new request)."""
        timeout = self.settings.offer_timeout_s
        now = time.time()
        for shown in result.shown:
            frame = {
                "type": "offer",
                "session_id": shown.session_id,
                "queue": queue,
                "customer_name": shown.customer_name,
                "waited_s": round(now - shown.enqueued_at, 3),
                "mode": mode.value,
                "expires_in_s": timeout if mode is Mode.OFFER else None,
            }
            await self.send(shown.agent_id, frame)
        if result.shown and mode is Mode.OFFER:
            self._armed(now + timeout)
        OFFERS.labels(queue).inc(len(result.shown))
        if queued is not None:
            await self.publish_queue("queued", queue, queued, priority=priority)
        await asyncio.gather(
            *(self.publish_queue("offered", queue, s.session_id, s.agent_id, mode=mode.value) for s in result.shown)
        )
        if result.flag:
            log.info("queue_serving_changed", queue=queue, flag=result.flag)
            await self.publish_queue(result.flag, queue, "", serving=result.serving)

    def _armed(self, deadline: float) -> None:
        if deadline < self.next_look:
            self.timers_changed.set()

    async def dispatch_for(self, agent_id: str) -> None:
        """Dispatch every queue the agent serves (it has room again)."""
        await self.dispatch_all(await self.store.agent_queues(agent_id))

    async def _moved_on(self, withdrawn: list[Withdrawn]) -> None:
        await self.dispatch_all(sorted({w.queue for w in withdrawn if w.queue}))

    # ------------------------------------------------------------------------------------ agents

    async def claim(self, agent_id: str, session_id: str) -> dict[str, Any]:
        """Claim a request; returns the ``claimed`` frame. Raises with code ``taken`` when another agent won."""
        result = await self.store.claim(session_id, agent_id)
        if result.outcome not in ("ok", "already"):
            error_class, code, message = _CLAIM_REFUSALS[result.outcome]
            raise error_class(message, code=code)
        if result.outcome == "ok":
            # The claim is decided: the others learn it before the token is fetched.
            await self._revoke(result.others, session_id, "taken")
            await self.outbox.flush(result.event)
            for other in result.withdrawn:
                await self.send(agent_id, {"type": "offer_revoked", "session_id": other, "reason": "withdrawn"})
        frame: dict[str, Any] = {
            "type": "claimed",
            "session_id": session_id,
            "queue": result.queue,
            "pin": result.pin,
            "token": None,
            "desk_url": None,
        }
        try:
            token = await call(
                self.nc,
                TOKEN_AGENT_ISSUE,
                IssueAgentToken(account_id=agent_id, pin=result.pin),
                AgentToken,
                timeout_s=self.settings.token_timeout_s,
            )
            frame.update(token=token.token, desk_url=token.desk_url, expires_at=token.expires_at)
        except CobrowseError as exc:
            # The claim stands; claiming again asks for the token again.
            log.warning("agent_token_failed", session_id=session_id, code=exc.code)
            frame["token_error"] = {"code": exc.code, "message": exc.message}
        if result.outcome == "ok":
            waited = result.waited_s
            log.info("request_claimed", session_id=session_id, agent_id=agent_id, waited_s=waited)
            CLAIMS.labels(result.queue).inc()
            WAIT_SECONDS.labels(result.queue).observe(waited)
            await self.store.count(result.queue, "claimed", waited)
        return frame

    async def release(self, agent_id: str, session_id: str) -> None:
        """The agent is done with a claimed session: its capacity comes back (dispatch its queues after)."""
        if not await self.store.release(session_id, agent_id):
            raise NotFound("you hold no such session", code="not_claimed")
        await self.publish_agent("released", agent_id, session_id=session_id)

    async def decline(self, agent_id: str, session_id: str) -> None:
        queue = await self.store.decline(session_id, agent_id)
        if queue:
            await self.dispatch(queue)
            await self.publish_queue("declined", queue, session_id, agent_id)

    async def set_status(self, agent_id: str, status: str, queues: list[str], capacity: int) -> list[str]:
        """Store the agent's status; returns the queues to dispatch once the agent has been told."""
        withdrawn = await self.store.set_status(agent_id, status, queues, capacity)
        for item in withdrawn:
            await self.send(agent_id, {"type": "offer_revoked", "session_id": item.session_id, "reason": "withdrawn"})
        await self.publish_agent("status", agent_id, status, queues, capacity=capacity)
        # Every queue the agent serves is looked at again: as well as new offers, "nobody serves it" may change.
        return sorted({w.queue for w in withdrawn if w.queue} | set(queues))

    async def dispatch_all(self, queues: Iterable[str]) -> None:
        for queue in queues:
            await self.dispatch(queue)

    async def connected(self, agent_id: str, conn_id: str, name: str) -> dict[str, Any]:
        state = await self.store.connect(agent_id, conn_id, name, self.settings.presence_ttl_s)
        if state.previous and state.previous != conn_id:
            # Another socket of this agent, on any replica, closes: one console per agent.
            await self.send(agent_id, {"type": "replaced", "conn_id": conn_id})
        await self.publish_agent("connected", agent_id, state.status, state.queues, name=name)
        return {"previous": state.previous, "status": state.status, "queues": state.queues, "capacity": state.capacity}

    async def disconnected(self, agent_id: str, conn_id: str) -> None:
        withdrawn = await self.store.gone(agent_id, conn_id)
        # The agent's offers move on first (events can wait); its queues may now have nobody serving them.
        queues = {w.queue for w in withdrawn if w.queue} | set(await self.store.agent_queues(agent_id))
        await self.dispatch_all(sorted(queues))
        await self.publish_agent("disconnected", agent_id)

    # ------------------------------------------------------------------------------------ timers

    async def offer_lapsed(self, member: str) -> None:
        withdrawn = await self.store.offer_timeout(member)
        if not withdrawn:
            return
        session_id, _, agent_id = member.rpartition("|")
        queue = next((w.queue for w in withdrawn if w.session_id == session_id), "")
        log.info("offer_timed_out", session_id=session_id, agent_id=agent_id)
        for item in withdrawn:
            reason = "timeout" if item.session_id == session_id else "away"
            await self.send(agent_id, {"type": "offer_revoked", "session_id": item.session_id, "reason": reason})
        await self.send(agent_id, {"type": "status", "status": "away", "reason": "offer_timeout"})
        OFFER_TIMEOUTS.labels(queue).inc()
        await self.store.count(queue, "timed_out")
        # Published before the offers that follow from it, so readers of the stream see cause before effect.
        await self.publish_queue("offer_timeout", queue, session_id, agent_id)
        await self.publish_agent("status", agent_id, "away", reason="offer_timeout")
        await self._moved_on(withdrawn)

    async def escalate(self, session_id: str) -> None:
        s = self.settings
        outcome = await self.store.escalate(
            session_id, s.overflow_action.value, s.overflow_queue, s.overflow_priority_boost
        )
        if not outcome.action:
            return
        log.info("request_escalated", session_id=session_id, action=outcome.action, queue=outcome.target)
        await self._revoke(outcome.seen, session_id, "escalated")
        await self.store.count(outcome.source, "escalated")
        await self.publish_queue(
            "escalated",
            outcome.source,
            session_id,
            action=outcome.action,
            to_queue=outcome.target,
            priority=outcome.priority,
        )
        await self.dispatch(outcome.target)

    # ------------------------------------------------------------------------------------ customers

    async def cancel(self, session_id: str) -> None:
        """The customer cancels: the registry ends the session first (unreachable: 503, nothing changed)."""
        state = (await self.store.request(session_id)).get("state", "")
        if not state:
            raise NotFound("no help request for this session", code="request_not_found")
        if state == "cancelled":
            return
        if state not in ("queued", "held"):
            raise Conflict(f"the request is {state}", code="not_queued")
        end = EndSession(session_id=session_id, reason="cancelled", by="customer")
        try:
            await call(self.nc, REGISTRY_END, end, SessionView, timeout_s=self.settings.registry_timeout_s)
        except RemoteError as exc:
            if exc.status != 404:
                raise
            log.info("cancel_session_unknown_to_registry", session_id=session_id)
        outcome = await self.store.cancel(session_id)
        if outcome.outcome == "not_queued":
            # The registry's `ended` event may have been applied first (it leaves the request cancelled).
            if outcome.state != "cancelled":
                raise Conflict(f"the request is {outcome.state}", code="not_queued")
            return
        log.info("request_cancelled", session_id=session_id, queue=outcome.queue)
        await self._revoke(outcome.seen, session_id, "cancelled")
        await self.outbox.flush(outcome.event)
        await self.store.count(outcome.queue, "abandoned")
        await self.dispatch(outcome.queue)

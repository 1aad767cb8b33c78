"""Intake and dispatch: session events become help requests, requests are offered to agents, customers cancel.

Every decision is one script in the desk of the request's queue (``store.py``); this module turns its outcome into
frames and events (``notifier.py``). Nothing here keeps state of its own, so any replica can act.

Failure model: a Redis error propagates (the HTTP edge answers 503; the consumer naks and the event comes again,
whose script then changes nothing twice); frames and events never fail a committed decision (``notifier.py``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable

import structlog
from nats.aio.client import Client as NatsClient

from shared.errors import Conflict, NotFound, RemoteError
from shared.messaging import REGISTRY_END, EndSession, SessionEvent, SessionView
from shared.rpc import call

from .frames import QUEUE_PATTERN
from .metrics import OFFERS
from .notifier import Notifier
from .replies import DispatchResult, SessionResult
from .settings import Mode, Settings
from .store import Store
from .timeouts import Alarm

__all__ = ["Intake"]

log = structlog.get_logger()

QUEUE_NAME = re.compile(QUEUE_PATTERN)


class Intake:
    def __init__(self, settings: Settings, store: Store, notifier: Notifier, nc: NatsClient, alarm: Alarm) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.nc = nc
        self.alarm = alarm

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

    async def _apply(self, outcome: SessionResult, view: SessionView, mode: Mode) -> None:
        sid, notify = view.session_id, self.notifier
        if outcome.kind == "stale":
            log.info("session_event_stale", session_id=sid, version=view.version)
        elif outcome.kind == "queued" and outcome.dispatched is not None:
            log.info("request_queued", session_id=sid, queue=outcome.queue)
            self.alarm.armed(time.time() + self.settings.max_wait(outcome.queue))
            # Offers go out first; the "queued" event is still published before the "offered" ones.
            await self._deliver(outcome.queue, mode, outcome.dispatched, sid, view.priority)
        elif outcome.kind == "left":
            revoke = {"joined": "taken", "cancelled": "cancelled"}.get(outcome.reason, "ended")
            await notify.revoke(outcome.seen, sid, revoke)
            await notify.queue_event("left", outcome.queue, sid, reason=outcome.reason)
            if outcome.reason != "joined":
                await self.store.count(outcome.queue, "abandoned")
            await self.dispatch(outcome.queue)
        elif outcome.kind == "held":
            # The customer is away: no agent may be offered it meanwhile; its place is kept (held:<queue>).
            log.info("request_held", session_id=sid, queue=outcome.queue)
            await notify.revoke(outcome.seen, sid, "held")
            await notify.queue_event("held", outcome.queue, sid)
            await self.dispatch(outcome.queue)
        elif outcome.kind == "resumed":
            log.info("request_resumed", session_id=sid, queue=outcome.queue)
            await notify.queue_event("resumed", outcome.queue, sid)
            await self.dispatch(outcome.queue)
        elif outcome.kind == "ended" and outcome.agent:
            reason = view.ended_reason or "ended"
            desk = self.settings.desk_map.of(outcome.queue)
            await notify.send(outcome.agent, {"type": "session_ended", "session_id": sid, "reason": reason})
            await notify.agent_event(desk, "released", outcome.agent, session_id=sid, reason="session_ended")
            await self.dispatch_all(await self.store.agent_queues(desk, outcome.agent))

    async def dispatch(self, queue: str, only: str = "") -> None:
        """Show the queue's waiting requests to agents with room (``only``: just that new request)."""
        mode = self.settings.mode(queue)
        result = await self.store.dispatch(queue, mode.value, self.settings.offer_timeout_s, only)
        await self._deliver(queue, mode, result)

    async def dispatch_all(self, queues: Iterable[str]) -> None:
        for queue in queues:
            await self.dispatch(queue)

    async def _deliver(
        self, queue: str, mode: Mode, result: DispatchResult, queued: str | None = None, priority: int = 0
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
            await self.notifier.send(shown.agent_id, frame)
        if result.shown and mode is Mode.OFFER:
            self.alarm.armed(now + timeout)
        OFFERS.labels(queue).inc(len(result.shown))
        notify = self.notifier
        if queued is not None:
            await notify.queue_event("queued", queue, queued, priority=priority)
        await asyncio.gather(
            *(notify.queue_event("offered", queue, s.session_id, s.agent_id, mode=mode.value) for s in result.shown)
        )
        if result.flag:
            log.info("queue_serving_changed", queue=queue, flag=result.flag)
            await notify.queue_event(result.flag, queue, "", serving=result.serving)

    async def cancel(self, session_id: str) -> None:
        """The customer cancels: the registry ends the session first (unreachable: 503, nothing changed)."""
        desk = await self.store.session_desk(session_id)
        state = (await self.store.request(desk, session_id)).get("state", "") if desk else ""
        if not desk or not state:
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
        outcome = await self.store.cancel(desk, session_id)
        if outcome.outcome == "not_queued":
            # The registry's `ended` event may have been applied first (it leaves the request cancelled).
            if outcome.state != "cancelled":
                raise Conflict(f"the request is {outcome.state}", code="not_queued")
            return
        log.info("request_cancelled", session_id=session_id, queue=outcome.queue)
        await self.notifier.revoke(outcome.seen, session_id, "cancelled")
        await self.notifier.flush(desk, outcome.event)
        await self.store.count(outcome.queue, "abandoned")
        await self.dispatch(outcome.queue)

"""Sessions Redis no longer holds, read back from JetStream: every SessionEvent the registry published.

An ended session leaves Redis after ``REGISTRY_ENDED_RETENTION_S`` (a live one after ``REGISTRY_SESSION_TTL_S``
without a beacon); its events stay in the ``COBROWSE`` stream. A read of such a session (``GET /sessions/{id}``)
is answered from there: an ephemeral pull consumer filtered on ``cobrowse.session.<id>.>`` reads the session's
events in order (at most ``MAX_EVENTS``, the newest kept), the last one's ``session`` is the view, and each event
becomes a history entry shaped like Redis's.

Failure model: the read is bounded by ``timeout_s`` overall; NATS down, slow or without JetStream is
``Unavailable`` (503 with Retry-After), never a 500; no event for the id is ``None`` (the caller's 404). The
consumer is deleted after the read and expires on its own if that fails (``inactive_threshold``).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

import structlog
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from shared.errors import Unavailable
from shared.messaging import STREAM, SessionEvent, SessionView

__all__ = ["Archived", "read_archive"]

log = structlog.get_logger()

SESSION_ID = re.compile(r"[0-9a-f]{32}")
MAX_EVENTS = 1000
FETCH = 256


@dataclass(frozen=True)
class Archived:
    session: SessionView
    history: list[dict[str, Any]]


async def read_archive(js: JetStreamContext, session_id: str, *, timeout_s: float) -> Archived | None:
    """The session's view and history from its published events; ``None`` when it has none."""
    if not SESSION_ID.fullmatch(session_id):
        return None  # never one of ours, and no subject to build from it
    try:
        async with asyncio.timeout(timeout_s):
            return await _read(js, session_id, timeout_s)
    except (TimeoutError, NatsError) as exc:
        log.warning("archive_unavailable", session_id=session_id, error=type(exc).__name__)
        raise Unavailable("the event archive is unavailable") from exc


async def _read(js: JetStreamContext, session_id: str, timeout_s: float) -> Archived | None:
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.ALL,
        mem_storage=True,
        inactive_threshold=max(5.0, 2 * timeout_s),
    )
    sub = await js.pull_subscribe(f"cobrowse.session.{session_id}.>", stream=STREAM, config=config)
    name = ""
    try:
        info = await sub.consumer_info()
        name = info.name
        pending = int(info.num_pending or 0)
        if pending == 0:
            return None
        events: deque[SessionEvent] = deque(maxlen=MAX_EVENTS)
        while pending > 0:
            for msg in await sub.fetch(min(FETCH, pending), timeout=timeout_s):
                pending = int(msg.metadata.num_pending)
                try:
                    events.append(SessionEvent.model_validate_json(msg.data))
                except ValidationError:
                    log.warning("archive_event_unreadable", session_id=session_id, seq=msg.metadata.sequence.stream)
        if not events:
            return None
        history = [
            {
                "event_id": e.event_id,
                "type": e.type,
                "source": e.source,
                "at": e.at,
                "from": e.prev_state,
                "to": e.session.state,
                "data": e.data,
            }
            for e in events
        ]
        return Archived(events[-1].session, history)
    finally:
        try:
            await sub.unsubscribe()
            if name:
                await js.delete_consumer(STREAM, name)
        except (NatsError, TimeoutError) as exc:  # it expires on its own
            log.info("archive_consumer_not_deleted", error=type(exc).__name__)

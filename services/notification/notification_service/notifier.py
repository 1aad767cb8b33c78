"""What the desk's decisions tell the world: frames for agents' sockets and events on JetStream.

Frames go on core NATS ``notify.agent.<id>`` and are delivered by whichever replica holds the agent's socket.
Events (``QueueEvent``, ``AgentEvent``) go to JetStream through the outbox of the desk they belong to.

Failure model: frames are best effort (an agent that misses one learns the truth from its next claim or from
``ready`` on reconnect); events never fail the caller once Redis has committed (``outbox.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import structlog
from nats.aio.client import Client as NatsClient

from shared.messaging import AgentEvent, QueueEvent, agent_inbox, agent_subject, new_event_id, queue_subject

from .desks import DeskMap
from .outbox import Outbox
from .replies import OutboxEntry

__all__ = ["Notifier"]

log = structlog.get_logger()


class Notifier:
    def __init__(self, nc: NatsClient, outbox: Outbox, desks: DeskMap) -> None:
        self.nc = nc
        self.outbox = outbox
        self.desks = desks

    async def send(self, agent_id: str, frame: dict[str, Any]) -> None:
        try:
            await self.nc.publish(agent_inbox(agent_id), json.dumps(frame).encode())
        except Exception as exc:  # best effort: a lost frame never undoes or fails a committed decision
            log.warning("agent_frame_lost", agent_id=agent_id, frame=frame.get("type"), error=type(exc).__name__)

    async def revoke(self, agents: Iterable[str], session_id: str, reason: str) -> None:
        for agent_id in agents:
            await self.send(agent_id, {"type": "offer_revoked", "session_id": session_id, "reason": reason})

    async def queue_event(
        self, type_: str, queue: str, session_id: str, agent_id: str | None = None, **data: Any
    ) -> None:
        event = QueueEvent(
            event_id=new_event_id(), type=type_, queue=queue, session_id=session_id, agent_id=agent_id, data=data
        )
        await self.outbox.publish(self.desks.of(queue), queue_subject(queue, type_), event.encode(), event.event_id)

    async def agent_event(
        self,
        desk: str,
        type_: str,
        agent_id: str,
        status: str | None = None,
        queues: list[str] | None = None,
        **data: Any,
    ) -> None:
        event = AgentEvent(
            event_id=new_event_id(), type=type_, agent_id=agent_id, status=status, queues=queues or [], data=data
        )
        await self.outbox.publish(desk, agent_subject(agent_id, type_), event.encode(), event.event_id)

    async def flush(self, desk: str, entry: OutboxEntry | None) -> None:
        """Publish at once an event a script wrote to the desk's outbox (the publisher retries if this fails)."""
        await self.outbox.flush(desk, entry)

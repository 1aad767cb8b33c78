"""Agents: their consoles connect and go, set status and queues, claim, decline and release requests.

An agent serves the queues of one desk; its desk is remembered in its own slot (``desks.py``) and every script of
the agent runs in that desk. Changing to queues of another desk moves the agent in three steps: it leaves the old
desk (refused while it holds claimed sessions there: release them first), the pointer names the new desk, and it
connects there. A failure between the steps leaves the agent in no desk's dispatch index (offered nothing) or,
briefly, in both; its next status or reconnect puts it right, and its presence keys lapse with its socket.

Failure model: as ``intake.py``: Redis errors propagate, frames and events never fail a committed decision.
"""

from __future__ import annotations

from typing import Any

import structlog
from nats.aio.client import Client as NatsClient

from shared.errors import CobrowseError, Conflict, Forbidden, NotFound
from shared.messaging import TOKEN_AGENT_ISSUE, AgentToken, IssueAgentToken
from shared.rpc import call

from .intake import Intake
from .metrics import CLAIMS, WAIT_SECONDS
from .notifier import Notifier
from .settings import Settings
from .store import Store
from .timeouts import Timeouts

__all__ = ["Claims"]

log = structlog.get_logger()

# A fresh exception per refusal: raising one shared instance would keep growing its traceback.
_CLAIM_REFUSALS: dict[str, tuple[type[CobrowseError], str, str]] = {
    "taken": (Conflict, "taken", "another agent claimed this request"),
    "not_found": (NotFound, "request_not_found", "no such help request"),
    "gone": (Conflict, "request_gone", "the request is no longer waiting"),
    "not_offered": (Forbidden, "not_offered", "this request was not offered to you"),
    "not_available": (Conflict, "not_available", "set your status to available first"),
    "at_capacity": (Conflict, "at_capacity", "you are at your capacity"),
}


class Claims:
    def __init__(
        self, settings: Settings, store: Store, notifier: Notifier, nc: NatsClient, intake: Intake, timeouts: Timeouts
    ) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.nc = nc
        self.intake = intake
        self.timeouts = timeouts

    async def desk_of(self, agent_id: str) -> str:
        """The desk the agent serves in (an agent that never chose: the default queue's)."""
        return await self.store.agent_desk(agent_id, self.settings.desk_map.of(self.settings.default_queue))

    async def claim(self, agent_id: str, session_id: str) -> dict[str, Any]:
        """Claim a request; returns the ``claimed`` frame. Raises with code ``taken`` when another agent won."""
        desk = await self.desk_of(agent_id)
        result = await self.store.claim(desk, session_id, agent_id)
        if result.outcome not in ("ok", "already"):
            error_class, code, message = _CLAIM_REFUSALS[result.outcome]
            raise error_class(message, code=code)
        if result.outcome == "ok":
            # The claim is decided: the others learn it before the token is fetched.
            await self.notifier.revoke(result.others, session_id, "taken")
            await self.notifier.flush(desk, result.event)
            for other in result.withdrawn:
                await self.notifier.send(
                    agent_id, {"type": "offer_revoked", "session_id": other, "reason": "withdrawn"}
                )
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
        """The agent is done with a claimed session: its capacity comes back, its queues are dispatched."""
        desk = await self.desk_of(agent_id)
        if not await self.store.release(desk, session_id, agent_id):
            raise NotFound("you hold no such session", code="not_claimed")
        await self.notifier.agent_event(desk, "released", agent_id, session_id=session_id)

    async def decline(self, agent_id: str, session_id: str) -> None:
        queue = await self.store.decline(await self.desk_of(agent_id), session_id, agent_id)
        if queue:
            await self.intake.dispatch(queue)
            await self.notifier.queue_event("declined", queue, session_id, agent_id)

    async def set_status(
        self, agent_id: str, conn_id: str, name: str, status: str, queues: list[str], capacity: int
    ) -> tuple[str, list[str]]:
        """Store the agent's status; returns its desk and the queues to dispatch once the agent has been told.

        Queues of two desks are refused (400 naming ``queues``); queues of another desk move the agent there.
        """
        desk = self.settings.desk_map.of_queues(queues)
        current = await self.desk_of(agent_id)
        if desk != current:
            left = await self.store.leave(current, agent_id)
            if left.held:
                raise Conflict(
                    f"release the {left.held} session(s) you hold in desk {current} before serving queues of desk "
                    f"{desk}",
                    code="desk_busy",
                )
            for item in left.withdrawn:
                await self.notifier.send(
                    agent_id, {"type": "offer_revoked", "session_id": item.session_id, "reason": "withdrawn"}
                )
            await self.store.set_agent_desk(agent_id, desk)
            await self.store.connect(desk, agent_id, conn_id, name, self.settings.presence_ttl_s)
            log.info("agent_moved", agent_id=agent_id, from_desk=current, to_desk=desk)
            await self.timeouts.moved_on(left.withdrawn)
        withdrawn = (await self.store.set_status(desk, agent_id, status, queues, capacity)).withdrawn
        for item in withdrawn:
            await self.notifier.send(
                agent_id, {"type": "offer_revoked", "session_id": item.session_id, "reason": "withdrawn"}
            )
        await self.notifier.agent_event(desk, "status", agent_id, status, queues, capacity=capacity)
        # Every queue the agent serves is looked at again: as well as new offers, "nobody serves it" may change.
        return desk, sorted({w.queue for w in withdrawn if w.queue} | set(queues))

    async def connected(self, agent_id: str, conn_id: str, name: str) -> dict[str, Any]:
        desk = await self.desk_of(agent_id)
        state = await self.store.connect(desk, agent_id, conn_id, name, self.settings.presence_ttl_s)
        if state.previous and state.previous != conn_id:
            # Another socket of this agent, on any replica, closes: one console per agent.
            await self.notifier.send(agent_id, {"type": "replaced", "conn_id": conn_id})
        await self.notifier.agent_event(desk, "connected", agent_id, state.status, state.queues, name=name)
        return {
            "desk": desk,
            "previous": state.previous,
            "status": state.status,
            "queues": state.queues,
            "capacity": state.capacity,
            "sessions": await self.store.claimed(desk, agent_id),
        }

    async def disconnected(self, agent_id: str, conn_id: str) -> None:
        desk = await self.desk_of(agent_id)
        gone = await self.store.gone(desk, agent_id, conn_id)
        # The agent's offers move on first (events can wait); its queues may now have nobody serving them.
        await self.intake.dispatch_all(sorted({w.queue for w in gone.withdrawn if w.queue} | set(gone.queues)))
        await self.notifier.agent_event(desk, "disconnected", agent_id)

    async def dispatch_for(self, agent_id: str) -> None:
        """Dispatch every queue the agent serves (it has room again)."""
        await self.intake.dispatch_all(await self.store.agent_queues(await self.desk_of(agent_id), agent_id))

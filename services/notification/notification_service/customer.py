"""Customer side of a help request: its position and estimated wait, and cancelling it.

The page authenticates with its session token (``X-Session-Token`` header or ``?token=``), which
``shared.session_tokens`` verifies without a lookup; it is only good for its own session.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from typing import Any

from aiohttp import web

from shared.accounts import Role
from shared.errors import NotFound
from shared.session_tokens import verify_session_token
from shared.web import json_response

from .dashboard import SSE_HEADERS, Client, Filters
from .keys import ACCOUNTS, CLAIMS, FANOUT, INTAKE, SETTINGS, STORE

__all__ = ["cancel_request", "claim_request", "request_events", "request_status"]

STATUS_MIN_INTERVAL_S = 0.5
"""A busy queue changes many times a second; a customer's stream is recomputed at most this often."""


def _session_id(request: web.Request) -> str:
    token = request.headers.get("X-Session-Token") or request.query.get("token")
    secret = request.app[SETTINGS].session_token_secret.get_secret_value().encode()
    return verify_session_token(secret, token, request.match_info["session_id"])


async def status_of(app: web.Application, session_id: str) -> dict[str, Any]:
    # One script whose work does not grow with the number of agents or of waiting customers (issue 8), in the desk
    # the session waited in.
    store = app[STORE]
    desk = await store.session_desk(session_id)
    req = await store.view(desk, session_id) if desk else None
    if req is None:
        raise NotFound("no help request for this session", code="request_not_found")
    available = req.available
    estimate = None
    if req.position is not None and req.recent_waits and available > 0:
        # Mean recent wait per "round" of free agents; rough, and said so in docs/notification.md. No agent
        # serving the queue: no estimate at all (contract 6).
        estimate = round(statistics.fmean(req.recent_waits) * math.ceil(req.position / available), 1)
    return {
        "session_id": session_id,
        "state": req.state,
        "queue": req.queue,
        "priority": req.priority,
        "position": req.position,
        "estimated_wait_s": estimate,
        "waited_s": round(time.time() - req.enqueued_at, 3) if req.enqueued_at else None,
        "agents_available": available,
        "no_agents": available == 0 and req.state == "queued",
        "escalated": req.escalated,
        "agent_name": req.agent_name or None,
    }


async def request_status(request: web.Request) -> web.Response:
    return json_response(await status_of(request.app, _session_id(request)))


async def request_events(request: web.Request) -> web.StreamResponse:
    """The same status as ``GET /api/requests/{id}`` as Server-Sent Events, sent whenever it changes.

    The stream ends after the request leaves the queue (its last frame says how).
    """
    app = request.app
    session_id = _session_id(request)
    status = await status_of(app, session_id)
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    fanout = app[FANOUT]
    client = fanout.register(Filters())
    try:
        while True:
            await response.write(f"data: {json.dumps(status)}\n\n".encode())
            if status["state"] != "queued":
                return response
            while True:
                if not await _changed(client, session_id, status["queue"], response, app):
                    return response  # the service is shutting down
                if client.dropped:
                    fanout.unregister(client)
                    client = fanout.register(Filters())
                await asyncio.sleep(STATUS_MIN_INTERVAL_S)
                latest = await status_of(app, session_id)
                if _without_clock(latest) != _without_clock(status):
                    status = latest
                    break
    finally:
        fanout.unregister(client)


def _without_clock(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "waited_s"}


async def _changed(
    client: Client, session_id: str, queue: str, response: web.StreamResponse, app: web.Application
) -> bool:
    """Wait for an event that may change the request's status; ``False`` when the service shuts down."""
    keepalive = app[SETTINGS].dashboard_keepalive_s
    while True:
        getter = asyncio.ensure_future(client.events.get())
        done, _ = await asyncio.wait([getter], timeout=keepalive)
        if not done:
            getter.cancel()
            await response.write(b": keepalive\n\n")
            continue
        event = getter.result()
        if event is None:
            return client.dropped != "shutdown"
        if event.session_id == session_id or queue in event.queues:
            return True


async def cancel_request(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    await request.app[INTAKE].cancel(session_id)
    return json_response(await status_of(request.app, session_id))


async def claim_request(request: web.Request) -> web.Response:
    account = await request.app[ACCOUNTS].authenticate_request(request, Role.AGENT)
    frame = await request.app[CLAIMS].claim(account.id, request.match_info["session_id"])
    frame.pop("type")
    return json_response(frame)

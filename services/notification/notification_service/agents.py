"""``GET /ws/agent``: an agent's console socket.

Browsers cannot set headers on a WebSocket, so the first frame authenticates:
``{"type": "auth", "api_key": "cbk_..."}`` within ``NOTIFY_AUTH_TIMEOUT_S``. Frames for the agent come from
core NATS ``notify.agent.<id>``, so an offer decided on any replica reaches the socket on this one.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import structlog
from aiohttp import WSMsgType, web
from nats.aio.msg import Msg
from structlog.contextvars import bound_contextvars

from shared.accounts import Account, Role
from shared.errors import BadRequest, CobrowseError
from shared.keys import NATS, WEBSOCKETS
from shared.messaging import agent_inbox

from .frames import Auth, Claim, Decline, Ping, Release, Status, authenticate_socket, parse, send_error
from .keys import ACCOUNTS, AGENT_CONNS, DESK, SETTINGS, STORE
from .metrics import AGENT_SOCKETS

__all__ = ["agent_socket"]

log = structlog.get_logger()

CLOSE_REPLACED = 4409


async def agent_socket(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    settings = app[SETTINGS]
    ws = web.WebSocketResponse(heartbeat=settings.heartbeat_s, max_msg_size=settings.max_frame_bytes)
    await ws.prepare(request)
    app[WEBSOCKETS].add(ws)
    try:
        accounts = app[ACCOUNTS]

        async def check(frame: Auth) -> Account:
            return (await accounts.authenticate(frame.api_key)).require(Role.AGENT)

        account = await authenticate_socket(ws, settings.auth_timeout_s, check)
        if account is not None:
            with bound_contextvars(agent_id=account.id):
                await _serve(app, ws, account)
    finally:
        app[WEBSOCKETS].discard(ws)
    return ws


async def _serve(app: web.Application, ws: web.WebSocketResponse, account: Account) -> None:
    settings, desk = app[SETTINGS], app[DESK]
    conn_id = uuid.uuid4().hex
    ready = asyncio.Event()

    async def forward(msg: Msg) -> None:
        await ready.wait()  # `ready` is the first frame the agent sees
        try:
            frame = json.loads(msg.data)
            if frame.get("type") == "replaced":
                if frame.get("conn_id") != conn_id:
                    await ws.send_json({"type": "replaced"})
                    await ws.close(code=CLOSE_REPLACED, message=b"replaced by a newer connection")
                return
            await ws.send_str(msg.data.decode())
        except (ConnectionError, RuntimeError):
            pass  # the socket is closing; its handler cleans up

    sub = await app[NATS].subscribe(agent_inbox(account.id), cb=forward)
    app[AGENT_CONNS][conn_id] = account.id
    AGENT_SOCKETS.inc()
    try:
        state = await desk.connected(account.id, conn_id, account.name)
        log.info("agent_connected", conn_id=conn_id, status=state["status"])
        await ws.send_json(
            {
                "type": "ready",
                "agent_id": account.id,
                "name": account.name,
                "status": state["status"],
                "queues": state["queues"],
                "capacity": state["capacity"],
                "sessions": await app[STORE].claimed(account.id),
                "offer_timeout_s": settings.offer_timeout_s,
                "heartbeat_s": settings.heartbeat_s,
            }
        )
        ready.set()
        if state["status"] == "available":
            await desk.dispatch_all(state["queues"])
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await _handle(app, ws, account, msg.data)
            elif msg.type == WSMsgType.BINARY:
                await send_error(ws, BadRequest("send JSON text frames", code="text_frames_only"))
    finally:
        AGENT_SOCKETS.dec()
        del app[AGENT_CONNS][conn_id]
        await sub.unsubscribe()
        await desk.disconnected(account.id, conn_id)
        log.info("agent_disconnected", conn_id=conn_id, close_code=ws.close_code)


async def _handle(app: web.Application, ws: web.WebSocketResponse, account: Account, raw: str) -> None:
    desk = app[DESK]
    session_id = None
    try:
        frame = parse(raw)
        if isinstance(frame, Ping):
            await ws.send_json({"type": "pong"})
        elif isinstance(frame, Status):
            queues = list(dict.fromkeys(frame.queues)) or [app[SETTINGS].default_queue]
            to_dispatch = await desk.set_status(account.id, frame.status, queues, frame.capacity)
            await ws.send_json({"type": "status", "status": frame.status, "queues": queues, "capacity": frame.capacity})
            await desk.dispatch_all(to_dispatch)
        elif isinstance(frame, Claim):
            session_id = frame.session_id
            await ws.send_json(await desk.claim(account.id, frame.session_id))
        elif isinstance(frame, Decline):
            session_id = frame.session_id
            await desk.decline(account.id, frame.session_id)
        elif isinstance(frame, Release):
            session_id = frame.session_id
            await desk.release(account.id, frame.session_id)
            await ws.send_json({"type": "released", "session_id": frame.session_id})
            await desk.dispatch_for(account.id)
        else:
            raise BadRequest("already authenticated", code="already_authenticated")
    except CobrowseError as exc:
        log.info("agent_frame_rejected", code=exc.code)
        await send_error(ws, exc, **({"session_id": session_id} if session_id else {}))
    except Exception:
        log.exception("agent_frame_failed")
        await send_error(ws, CobrowseError())

"""``GET /ws/agent``: an agent's console socket.

Browsers cannot set headers on a WebSocket, so the first frame authenticates:
``{"type": "auth", "api_key": "cbk_..."}`` within ``NOTIFY_AUTH_TIMEOUT_S``. Frames for the agent come from
core NATS ``notify.agent.<id>``, so an offer decided on any replica reaches the socket on this one.

The socket keeps its API key in its own memory (never logged) to re-authenticate: on every claim, when
``accounts.revoked`` names its account, and every ``NOTIFY_ACCOUNT_RECHECK_S``. A key that no longer holds ends
the socket with ``{"type": "error", "code": "revoked"}`` and close code 4401; the disconnect withdraws its
offers. Once upgraded, any failure (an outage included) is an error frame and a close, never an HTTP answer.
The disconnect clean-up retries through a Redis or NATS outage, so every ``disconnected`` event is published.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import structlog
from aiohttp import WSMsgType, web
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from structlog.contextvars import bound_contextvars

from shared.accounts import Account, Role
from shared.errors import BadRequest, CobrowseError, Unavailable
from shared.keys import NATS
from shared.messaging import agent_inbox

from .connections import Conn, Kind, credential_digest
from .frames import (
    CLOSE_UNAUTHORIZED,
    Auth,
    Claim,
    Decline,
    Ping,
    Release,
    Status,
    as_error,
    authenticate_socket,
    parse,
    send_error,
    serve_upgraded,
)
from .keys import ACCOUNTS, AGENT_CONNS, BACKGROUND, CLAIMS, CONNECTIONS, INTAKE, SETTINGS, AgentConn
from .metrics import AGENT_SOCKETS

__all__ = ["agent_socket"]

log = structlog.get_logger()

CLOSE_REPLACED = 4409


async def agent_socket(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings, conns = app[SETTINGS], app[CONNECTIONS]
    conn = conns.admit(Kind.AGENT)  # 503 before the upgrade when this process is full
    ws = web.WebSocketResponse(heartbeat=settings.heartbeat_s, max_msg_size=settings.max_frame_bytes)
    try:
        await serve_upgraded(request, ws, lambda: _authenticated(app, ws, conn))
    finally:
        conns.release(conn)
    return ws


async def _authenticated(app: web.Application, ws: web.WebSocketResponse, conn: Conn) -> None:
    accounts = app[ACCOUNTS]
    api_key = ""

    async def check(frame: Auth) -> Account:
        nonlocal api_key
        account = (await accounts.authenticate(frame.api_key)).require(Role.AGENT)
        app[CONNECTIONS].bind(conn, account.id, credential_digest(frame.api_key or ""))
        api_key = frame.api_key or ""
        return account

    account = await authenticate_socket(ws, app[SETTINGS].auth_timeout_s, check)
    if account is None:
        return

    async def recheck() -> Account:
        return (await accounts.authenticate(api_key)).require(Role.AGENT)

    async def end(exc: CobrowseError) -> None:
        await send_error(ws, exc)
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"revoked")

    conn.check = recheck
    await conn.on_end(end)
    if conn.ended:
        return
    with bound_contextvars(agent_id=account.id):
        await _serve(app, ws, account, conn)


async def _serve(app: web.Application, ws: web.WebSocketResponse, account: Account, conn: Conn) -> None:
    settings, claims = app[SETTINGS], app[CLAIMS]
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
    AGENT_SOCKETS.inc()
    try:
        state = await claims.connected(account.id, conn_id, account.name)
        app[AGENT_CONNS][conn_id] = AgentConn(account.id, state["desk"])
        log.info("agent_connected", conn_id=conn_id, status=state["status"], desk=state["desk"])
        await ws.send_json(
            {
                "type": "ready",
                "agent_id": account.id,
                "name": account.name,
                "status": state["status"],
                "queues": state["queues"],
                "capacity": state["capacity"],
                "sessions": state["sessions"],
                "offer_timeout_s": settings.offer_timeout_s,
                "heartbeat_s": settings.heartbeat_s,
            }
        )
        ready.set()
        if state["status"] == "available":
            await app[INTAKE].dispatch_all(state["queues"])
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await _handle(app, ws, account, conn, conn_id, msg.data)
            elif msg.type == WSMsgType.BINARY:
                await send_error(ws, BadRequest("send JSON text frames", code="text_frames_only"))
    finally:
        AGENT_SOCKETS.dec()
        app[AGENT_CONNS].pop(conn_id, None)
        # A task of the app's, not of this handler: aiohttp cancels a handler whose client has gone away, and the
        # clean-up may have to wait for a Redis connection or through an outage.
        cleanup = asyncio.create_task(_disconnected(app, account.id, conn_id, ws.close_code))
        app[BACKGROUND].add(cleanup)
        cleanup.add_done_callback(app[BACKGROUND].discard)
        try:
            await sub.unsubscribe()
        except NatsError:
            pass  # NATS is down: the subscription died with the connection


DISCONNECT_RETRY_S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 5.0, 5.0, 10.0)
"""Pauses between attempts at a disconnect clean-up (about 30 s in all: a Redis or NATS restart)."""


async def _disconnected(app: web.Application, agent_id: str, conn_id: str, close_code: int | None) -> None:
    """Withdraw the agent's offers and publish ``disconnected``, waiting through an outage instead of failing."""
    for pause in (*DISCONNECT_RETRY_S, None):
        try:
            await app[CLAIMS].disconnected(agent_id, conn_id)
            log.info("agent_disconnected", agent_id=agent_id, conn_id=conn_id, close_code=close_code)
            return
        except Exception as exc:
            error = as_error(exc)
            if pause is None or not isinstance(error, Unavailable):
                log.error("agent_disconnect_failed", agent_id=agent_id, conn_id=conn_id, code=error.code)
                return
            log.warning("agent_disconnect_retry", agent_id=agent_id, conn_id=conn_id, retry_in_s=pause)
            await asyncio.sleep(pause)


async def _handle(
    app: web.Application, ws: web.WebSocketResponse, account: Account, conn: Conn, conn_id: str, raw: str
) -> None:
    claims = app[CLAIMS]
    session_id = None
    try:
        frame = parse(raw)
        if isinstance(frame, Ping):
            await ws.send_json({"type": "pong"})
        elif isinstance(frame, Status):
            queues = list(dict.fromkeys(frame.queues)) or [app[SETTINGS].default_queue]
            desk, to_dispatch = await claims.set_status(
                account.id, conn_id, account.name, frame.status, queues, frame.capacity
            )
            if conn_id in app[AGENT_CONNS]:
                app[AGENT_CONNS][conn_id].desk = desk  # its presence key is in that desk now
            await ws.send_json({"type": "status", "status": frame.status, "queues": queues, "capacity": frame.capacity})
            await app[INTAKE].dispatch_all(to_dispatch)
        elif isinstance(frame, Claim):
            session_id = frame.session_id
            # A claim hands over a customer's screen: the key must still hold now, not only when the socket opened.
            if not await conn.recheck(fail_closed=False):
                return
            await ws.send_json(await claims.claim(account.id, frame.session_id))
        elif isinstance(frame, Decline):
            session_id = frame.session_id
            await claims.decline(account.id, frame.session_id)
        elif isinstance(frame, Release):
            session_id = frame.session_id
            await claims.release(account.id, frame.session_id)
            await ws.send_json({"type": "released", "session_id": frame.session_id})
            await claims.dispatch_for(account.id)
        else:
            raise BadRequest("already authenticated", code="already_authenticated")
    except CobrowseError as exc:
        log.info("agent_frame_rejected", code=exc.code)
        await send_error(ws, exc, **({"session_id": session_id} if session_id else {}))
    except Exception as exc:
        await send_error(ws, as_error(exc), **({"session_id": session_id} if session_id else {}))

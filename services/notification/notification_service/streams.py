"""Supervisor streams: ``GET /events`` (SSE), ``GET /ws/dashboard`` and ``POST /api/tickets``.

``EventSource`` cannot set headers, so a page first gets a single-use ticket with its API key
(``POST /api/tickets``, Bearer) and opens ``/events?ticket=...``; to resume it passes ``last_event_id=N``
(a new ``EventSource`` cannot set ``Last-Event-ID`` either). Non-browser clients send
``Authorization: Bearer`` and the ``Last-Event-ID`` header. The WebSocket authenticates with its first frame,
``{"type": "auth", "api_key": ...}`` or ``{"type": "auth", "ticket": ...}``.

Every stream counts against the caps of ``connections.py`` before it is prepared (429/503 with ``Retry-After``)
and ends with ``{"type": "error", "code": "revoked"}`` (WebSocket: then close code 4401) once its credential no
longer holds: on ``accounts.revoked`` within a second, else at the next ``NOTIFY_ACCOUNT_RECHECK_S`` re-check. A
key-authenticated stream keeps its key in memory to re-check it; a ticket remembers its account and the digest of
the key that bought it (a ticket stream's backstop re-check sees a disabled or deleted account, not a rotation:
that one arrives over NATS).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from shared.accounts import Account, Role, bearer_key
from shared.errors import CobrowseError, Forbidden, NotFound, Unauthorized
from shared.web import json_response

from .connections import Conn, Kind, credential_digest
from .dashboard import SSE_HEADERS, Filters, Send, parse_last_id, stream_to
from .frames import CLOSE_UNAUTHORIZED, Auth, as_error, authenticate_socket, error_frame, serve_upgraded
from .keys import ACCOUNTS, CONNECTIONS, FANOUT, SETTINGS, SNAPSHOTS, STORE
from .stats import queue_overview

__all__ = ["dashboard_socket", "event_stream", "issue_ticket"]

log = structlog.get_logger()


async def _authenticate(app: web.Application, conn: Conn, api_key: str | None, ticket: str | None) -> Account:
    """The supervisor behind a key or a ticket; ``conn`` learns how to re-check it and counts it against caps."""
    accounts = app[ACCOUNTS]
    if ticket:
        redeemed = await app[STORE].redeem_ticket(ticket)
        if redeemed is None:
            raise Unauthorized("unknown, used or expired ticket", code="invalid_ticket")
        account_id, _, credential = redeemed.partition(" ")

        async def check() -> Account:
            try:
                account = await accounts.get(account_id)
            except NotFound as exc:
                raise Unauthorized("account is gone", code="invalid_ticket") from exc
            if account.disabled:
                raise Forbidden("account is disabled", code="account_disabled")
            return account.require(Role.SUPERVISOR)

        account = await check()
        conn.check, conn.exact = check, False
        app[CONNECTIONS].bind(conn, account.id, credential or credential_digest(account_id))
        return account

    async def check_key() -> Account:
        return (await accounts.authenticate(api_key)).require(Role.SUPERVISOR)

    account = await check_key()
    conn.check = check_key
    app[CONNECTIONS].bind(conn, account.id, credential_digest(api_key or ""))
    return account


async def _snapshot(app: web.Application) -> tuple[int, str]:
    """The snapshot frame and its id, shared by the clients that connect within ``dashboard_snapshot_ttl_s``."""
    cache = app[SNAPSHOTS]
    async with cache.lock:
        now = time.monotonic()
        if cache.frame is None or now - cache.built_at > app[SETTINGS].dashboard_snapshot_ttl_s:
            snapshot_id = app[FANOUT].last_seq  # read before the state: the state is at least this recent
            store = app[STORE]
            agents = await store.agents()
            sessions = [
                {k: v for k, v in req.items() if k not in ("pin", "updated")} for req in await store.live_requests()
            ]
            queues = await queue_overview(store, app[SETTINGS], agents)
            body = {"type": "snapshot", "id": snapshot_id, "sessions": sessions, "queues": queues, "agents": agents}
            cache.id, cache.frame, cache.built_at = snapshot_id, json.dumps(body), now
        return cache.id, cache.frame


async def issue_ticket(request: web.Request) -> web.Response:
    account = await request.app[ACCOUNTS].authenticate_request(request, Role.SUPERVISOR)
    ttl = request.app[SETTINGS].ticket_ttl_s
    # The ticket carries the digest of the key that bought it: its streams count against that key's caps.
    ticket = await request.app[STORE].issue_ticket(f"{account.id} {credential_digest(bearer_key(request) or '')}", ttl)
    return json_response({"ticket": ticket, "expires_in_s": ttl}, status=201)


async def _resume_point(request: web.Request) -> tuple[int | None, Filters]:
    """Where a stream starts and what it shows; a bad ``Last-Event-ID`` is a 400 before anything else."""
    last_id = parse_last_id(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    await request.app[FANOUT].check_resume(last_id)
    return last_id, Filters.from_query(request.query)


async def event_stream(request: web.Request) -> web.StreamResponse:
    app = request.app
    last_id, filters = await _resume_point(request)
    conns = app[CONNECTIONS]
    conn = conns.admit(Kind.DASHBOARD, sse=True)  # caps answer 429/503 before the stream starts
    try:
        # Spends a ticket: after every check of the request itself.
        account = await _authenticate(app, conn, bearer_key(request), request.query.get("ticket"))
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)

        async def send(frame: str, event_id: int | None) -> None:
            head = f"id: {event_id}\n" if event_id is not None else ""
            await response.write(f"{head}data: {frame}\n\n".encode())

        async def keepalive() -> None:
            await response.write(b": keepalive\n\n")

        await _run(app, conn, account, filters, last_id, send, keepalive, request)
        return response
    finally:
        conns.release(conn)


async def dashboard_socket(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings, conns = app[SETTINGS], app[CONNECTIONS]
    last_id, filters = await _resume_point(request)
    conn = conns.admit(Kind.DASHBOARD)
    ws = web.WebSocketResponse(heartbeat=settings.heartbeat_s, max_msg_size=settings.max_frame_bytes)
    try:
        # Non-browser clients may authenticate the upgrade itself (then caps answer 429 before it).
        header_account = await _authenticate(app, conn, bearer_key(request), None) if bearer_key(request) else None
        await serve_upgraded(
            request, ws, lambda: _serve_socket(app, ws, conn, header_account, filters, last_id, request)
        )
    finally:
        conns.release(conn)
    return ws


async def _serve_socket(
    app: web.Application,
    ws: web.WebSocketResponse,
    conn: Conn,
    account: Account | None,
    filters: Filters,
    last_id: int | None,
    request: web.Request,
) -> None:
    async def check(frame: Auth) -> Account:
        return await _authenticate(app, conn, frame.api_key, frame.ticket)

    async def send(frame: str, event_id: int | None) -> None:
        await ws.send_str(frame)

    async def keepalive() -> None:
        pass  # the WebSocket heartbeat keeps the connection checked

    async def drain_input() -> None:
        # Dashboards only listen; reading keeps control frames (pong, close) flowing.
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_json({"type": "error", "code": "read_only", "message": "this stream takes no frames"})

    account = account or await authenticate_socket(ws, app[SETTINGS].auth_timeout_s, check)
    if account is None:
        return
    reader = asyncio.create_task(drain_input())
    writer = asyncio.create_task(_run(app, conn, account, filters, last_id, send, keepalive, request))
    await asyncio.wait([reader, writer], return_when=asyncio.FIRST_COMPLETED)
    for task in (reader, writer):
        task.cancel()
    results = await asyncio.gather(reader, writer, return_exceptions=True)
    revoked = results[1] is True
    await ws.close(code=CLOSE_UNAUTHORIZED if revoked else WSCloseCode.OK, message=b"revoked" if revoked else b"")


async def _run(
    app: web.Application,
    conn: Conn,
    account: Account,
    filters: Filters,
    last_id: int | None,
    send: Send,
    keepalive: Callable[[], Awaitable[None]],
    request: web.Request,
) -> bool:
    """Stream to the client until it is dropped or its credential is revoked; returns whether it was revoked."""
    fanout = app[FANOUT]
    client = fanout.register(filters)
    revoked: asyncio.Future[CobrowseError] = asyncio.get_running_loop().create_future()

    async def end(exc: CobrowseError) -> None:
        if not revoked.done():
            revoked.set_result(exc)

    await conn.on_end(end)
    log.info("dashboard_connected", account_id=account.id, resume_from=last_id)
    streaming = asyncio.create_task(
        stream_to(fanout, client, last_id, lambda: _snapshot(app), send, keepalive, app[SETTINGS].dashboard_keepalive_s)
    )
    try:
        either: list[asyncio.Future[Any]] = [streaming, revoked]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if revoked.done():
            streaming.cancel()
            await asyncio.gather(streaming, return_exceptions=True)
            await send(json.dumps(error_frame(revoked.result())), None)
            return True
        try:
            reason, sent = streaming.result()
        except Exception as exc:  # Redis or NATS failed mid-stream: say so; a started stream cannot become a 500
            await send(json.dumps(error_frame(as_error(exc))), None)
            return False
        log.info("dashboard_dropped", account_id=account.id, reason=reason, last_event_id=sent)
        # A slow client may not read even this frame: it gets a moment, then the connection is cut.
        async with asyncio.timeout(app[SETTINGS].dashboard_drop_grace_s):
            await send(json.dumps({"type": "dropped", "reason": reason, "last_event_id": sent, "last_id": sent}), None)
    except TimeoutError:
        if request.transport is not None:
            request.transport.close()
    except (ConnectionError, RuntimeError):
        log.info("dashboard_gone", account_id=account.id)
    finally:
        streaming.cancel()
        fanout.unregister(client)
    return False

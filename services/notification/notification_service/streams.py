"""Supervisor streams: ``GET /events`` (SSE), ``GET /ws/dashboard`` and ``POST /api/tickets``.

``EventSource`` cannot set headers, so a page first gets a single-use ticket with its API key
(``POST /api/tickets``, Bearer) and opens ``/events?ticket=...``; to resume it passes ``last_event_id=N``
(a new ``EventSource`` cannot set ``Last-Event-ID`` either). Non-browser clients send
``Authorization: Bearer`` and the ``Last-Event-ID`` header. The WebSocket authenticates with its first frame,
``{"type": "auth", "api_key": ...}`` or ``{"type": "auth", "ticket": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import WSMsgType, web

from shared.accounts import Account, Role, bearer_key
from shared.errors import NotFound, Unauthorized
from shared.keys import WEBSOCKETS

from .dashboard import SSE_HEADERS, Filters, Send, parse_last_id, stream_to
from .frames import Auth, authenticate_socket
from .keys import ACCOUNTS, FANOUT, SETTINGS, SNAPSHOTS, STORE
from .stats import queue_overview

__all__ = ["dashboard_socket", "event_stream", "issue_ticket"]

log = structlog.get_logger()


async def _account(app: web.Application, api_key: str | None, ticket: str | None) -> Account:
    accounts = app[ACCOUNTS]
    if ticket:
        account_id = await app[STORE].redeem_ticket(ticket)
        if account_id is None:
            raise Unauthorized("unknown, used or expired ticket", code="invalid_ticket")
        try:
            account = await accounts.get(account_id)
        except NotFound as exc:
            raise Unauthorized("account is gone", code="invalid_ticket") from exc
        if account.disabled:
            raise Unauthorized("account is disabled", code="account_disabled")
    else:
        account = await accounts.authenticate(api_key)
    return account.require(Role.SUPERVISOR)


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
    ticket = await request.app[STORE].issue_ticket(account.id, ttl)
    return web.json_response({"ticket": ticket, "expires_in_s": ttl}, status=201)


async def event_stream(request: web.Request) -> web.StreamResponse:
    app = request.app
    last_id = parse_last_id(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    filters = Filters.from_query(request.query)
    account = await _account(app, bearer_key(request), request.query.get("ticket"))  # spends a ticket: last
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)

    async def send(frame: str, event_id: int | None) -> None:
        head = f"id: {event_id}\n" if event_id is not None else ""
        await response.write(f"{head}data: {frame}\n\n".encode())

    async def keepalive() -> None:
        await response.write(b": keepalive\n\n")

    await _run(app, account, filters, last_id, send, keepalive, request)
    return response


async def dashboard_socket(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    settings = app[SETTINGS]
    last_id = parse_last_id(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    filters = Filters.from_query(request.query)
    # Non-browser clients may authenticate the upgrade itself; browsers send an auth frame first.
    header_account = await _account(app, bearer_key(request), None) if bearer_key(request) else None
    ws = web.WebSocketResponse(heartbeat=settings.heartbeat_s, max_msg_size=settings.max_frame_bytes)
    await ws.prepare(request)
    app[WEBSOCKETS].add(ws)

    async def check(frame: Auth) -> Account:
        return await _account(app, frame.api_key, frame.ticket)

    async def send(frame: str, event_id: int | None) -> None:
        await ws.send_str(frame)

    async def keepalive() -> None:
        pass  # the WebSocket heartbeat keeps the connection checked

    async def drain_input() -> None:
        # Dashboards only listen; reading keeps control frames (pong, close) flowing.
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_json({"type": "error", "code": "read_only", "message": "this stream takes no frames"})

    try:
        account = header_account or await authenticate_socket(ws, settings.auth_timeout_s, check)
        if account is not None:
            reader = asyncio.create_task(drain_input())
            writer = asyncio.create_task(_run(app, account, filters, last_id, send, keepalive, request))
            await asyncio.wait([reader, writer], return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            await ws.close()
    finally:
        app[WEBSOCKETS].discard(ws)
    return ws


async def _run(
    app: web.Application,
    account: Account,
    filters: Filters,
    last_id: int | None,
    send: Send,
    keepalive: Callable[[], Awaitable[None]],
    request: web.Request,
) -> None:
    fanout = app[FANOUT]
    client = fanout.register(filters)
    log.info("dashboard_connected", account_id=account.id, resume_from=last_id)
    try:
        reason, sent = await stream_to(
            fanout, client, last_id, lambda: _snapshot(app), send, keepalive, app[SETTINGS].dashboard_keepalive_s
        )
        log.info("dashboard_dropped", account_id=account.id, reason=reason, last_event_id=sent)
        # A slow client may not read even this frame: it gets a moment, then the connection is cut.
        async with asyncio.timeout(app[SETTINGS].dashboard_drop_grace_s):
            await send(json.dumps({"type": "dropped", "reason": reason, "last_event_id": sent}), None)
    except TimeoutError:
        if request.transport is not None:
            request.transport.close()
    except (ConnectionError, RuntimeError):
        log.info("dashboard_gone", account_id=account.id)
    finally:
        fanout.unregister(client)

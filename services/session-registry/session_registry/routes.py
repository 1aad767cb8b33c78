"""HTTP routes: beacons from customer pages, Zoom webhooks, the staff read API and the beacon script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from shared.accounts import Account, Role
from shared.errors import NotFound, UnsupportedMediaType, ValidationFailed
from shared.keys import JETSTREAM
from shared.messaging import SessionState, SessionView
from shared.rpc import validation_errors
from shared.session_tokens import verify_session_token
from shared.web import json_response, read_json, static_file

from .archive import read_archive
from .beacons import parse_beacon, parse_body
from .keys import ACCOUNTS, CORRELATOR, SETTINGS, STORE
from .webhooks import ZoomWebhook, parse_zoom_event, url_validation_reply, verify_signature

__all__ = ["setup_routes"]

log = structlog.get_logger()

STATIC = Path(__file__).parent / "static"
BEACON_TYPES = frozenset({"text/plain", "application/json"})
STAFF = (Role.AGENT, Role.SUPERVISOR)
PIN_DATA = ("pin", "previous")
"""History ``data`` fields that hold a PIN (``pin_assigned``/``pin_changed``, ``pin_conflict``, ``pin_retired``)."""


def _sees_pins(account: Account) -> bool:
    # Contract 8: a PIN lets its holder into a customer's screen; an agent gets one only by claiming the session
    # (notification service), never by reading the registry.
    return account.role is not Role.AGENT


def _session_json(view: SessionView, pins: bool) -> dict[str, Any]:
    return view.model_dump(mode="json") if pins else view.model_copy(update={"pin": None}).model_dump(mode="json")


def _history_json(entries: list[dict[str, Any]], pins: bool) -> list[dict[str, Any]]:
    if pins:
        return entries
    for entry in entries:
        data = entry.get("data")
        if isinstance(data, dict):
            for name in PIN_DATA:
                if name in data:
                    data[name] = None
    return entries


async def post_beacon(request: web.Request) -> web.Response:
    if request.content_type not in BEACON_TYPES:
        raise UnsupportedMediaType("send the beacon as text/plain or application/json")
    settings = request.app[SETTINGS]
    beacon = parse_beacon(await request.read(), max_events=settings.max_batch_events)
    verify_session_token(settings.session_token_secret.get_secret_value().encode(), beacon.token, beacon.session_id)
    result = await request.app[STORE].apply(beacon.session_id, "beacon", beacon.events)
    return json_response({**result.to_dict(), "rejected": beacon.rejected}, status=202)


async def post_zoom_webhook(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if settings.zoom_webhook_secret_token is None:
        raise NotFound("Zoom webhooks are not configured", code="webhooks_disabled")
    secret = settings.zoom_webhook_secret_token.get_secret_value().encode()
    raw = await request.read()
    verify_signature(
        secret,
        timestamp=request.headers.get("x-zm-request-timestamp"),
        signature=request.headers.get("x-zm-signature"),
        body=raw,
        tolerance_s=settings.webhook_tolerance_s,
    )
    if request.content_type != "application/json":
        raise UnsupportedMediaType("Zoom sends webhooks as application/json")
    body = parse_body(raw, ZoomWebhook)
    if body.event == "endpoint.url_validation":
        plain = body.payload.get("plainToken")
        if not isinstance(plain, str) or not plain:
            raise ValidationFailed.one("payload.plainToken", "required")
        return json_response(url_validation_reply(secret, plain))
    zoom_event = parse_zoom_event(body, raw)
    if zoom_event is None:
        log.info("webhook_ignored", zoom_event=body.event[:64])
        return json_response({"status": "ignored"})
    store = request.app[STORE]
    session_id = await store.correlate_zoom(zoom_event.zoom_session_id, zoom_event.pin, zoom_event.user_session_id)
    if session_id is None and zoom_event.zoom_session_id and CORRELATOR in request.app:
        # Zoom wants its answer within 3 s: the REST lookup runs in the background, the webhook is kept until then.
        await request.app[CORRELATOR].hold(zoom_event.zoom_session_id, zoom_event.events)
        return json_response({"status": "pending"})
    if session_id is None:
        # Answer 200 all the same: Zoom retries failed deliveries, and a retry cannot correlate any better.
        log.info("webhook_uncorrelated", zoom_event=body.event)
        return json_response({"status": "uncorrelated"})
    result = await store.apply(session_id, "webhook", zoom_event.events)
    return json_response({"status": "applied", "session_id": session_id, **result.to_dict()})


class ListQuery(BaseModel):
    state: SessionState | None = None
    queue: str | None = Field(None, max_length=64)
    # inf, nan and 1e400 (inf once parsed) are a 400; so is a time past year 33658 (its milliseconds overflow)
    since: float = Field(0.0, ge=0, le=1e12, allow_inf_nan=False)
    limit: int = Field(100, ge=1, le=1000)


class EndBody(BaseModel):
    reason: str = Field("ended_by_supervisor", pattern=r"^[a-z0-9_]{1,64}$")


async def list_sessions(request: web.Request) -> web.Response:
    account = await request.app[ACCOUNTS].authenticate_request(request, *STAFF)
    try:
        query = ListQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise ValidationFailed(validation_errors(exc)) from exc
    sessions = await request.app[STORE].list(state=query.state, queue=query.queue, since=query.since, limit=query.limit)
    pins = _sees_pins(account)
    return json_response({"sessions": [_session_json(s, pins) for s in sessions]})


async def get_session(request: web.Request) -> web.Response:
    account = await request.app[ACCOUNTS].authenticate_request(request, *STAFF)
    store = request.app[STORE]
    session_id = request.match_info["session_id"]
    found = await store.views([session_id])
    if found:
        session = found[0]
        history: list[dict[str, Any]] = await store.history(session_id)
    else:
        # Gone from Redis (ended past its retention, or expired): its events are still in JetStream.
        settings = request.app[SETTINGS]
        archived = await read_archive(request.app[JETSTREAM], session_id, timeout_s=settings.publish_timeout_s)
        if archived is None:
            raise NotFound(f"no session {session_id}", code="session_not_found")
        session, history = archived.session, archived.history
    pins = _sees_pins(account)
    return json_response({"session": _session_json(session, pins), "history": _history_json(history, pins)})


async def end_session(request: web.Request) -> web.Response:
    account = await request.app[ACCOUNTS].authenticate_request(request, Role.SUPERVISOR)
    body = await read_json(request, EndBody) if request.body_exists else EndBody()
    session_id = request.match_info["session_id"]
    session = await request.app[STORE].end(session_id, body.reason, by=account.id)
    log.info("session_ended_by_staff", session_id=session_id, account_id=account.id, reason=body.reason)
    return json_response({"session": session.model_dump(mode="json")})


async def _beacons_from_any_origin(request: web.Request, response: web.StreamResponse) -> None:
    # Beacons come from the customers' own sites, whatever CORS_ORIGINS lists, and carry their credential in the
    # body (beacon.js sends no cookies), so any origin may read the answer, errors included: the script must see
    # a 4xx to stop retrying it.
    if request.path == "/beacons":
        response.headers["Access-Control-Allow-Origin"] = "*"


def setup_routes(app: web.Application) -> None:
    app.on_response_prepare.append(_beacons_from_any_origin)
    app.router.add_post("/beacons", post_beacon)
    app.router.add_post("/webhooks/zoom", post_zoom_webhook)
    app.router.add_get("/sessions", list_sessions)
    app.router.add_get("/sessions/{session_id}", get_session)
    app.router.add_post("/sessions/{session_id}/end", end_session)
    # Customers' sites load it on every page: a short cache, so a new version still spreads within minutes.
    app.router.add_get("/beacon.js", static_file(STATIC / "beacon.js", cache_control="max-age=300"))
    app.router.add_get("/openapi.json", static_file(STATIC.parent / "openapi.json"))

"""HTTP routes of the token service (the contract is ``docs/api.md`` and ``openapi.json``)."""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from structlog.contextvars import get_contextvars

from shared.accounts import bearer_key
from shared.errors import Forbidden, ValidationFailed
from shared.messaging import CreateSession
from shared.web import client_ip, json_response, read_json, static_file

from .agents import AGENT_ROLES
from .keys import ACCOUNTS, AGENT_TOKENS, LIMITS, SESSIONS, SETTINGS, SIGNER, TOKEN_REQUEST
from .metrics import CUSTOMER_TOKENS, TOKENS_ISSUED, counts_refusals
from .schemas import AgentConnect, CustomerStart, TokenRequest
from .settings import Settings
from .signer import RoleType

__all__ = ["setup_routes"]

log = structlog.get_logger()

PACKAGE_DIR = Path(__file__).parent
STATIC_DIR = PACKAGE_DIR / "static"
OPENAPI_PATH = PACKAGE_DIR / "openapi.json"


def _byop_refused(prop: str) -> ValidationFailed:
    return ValidationFailed.one(prop, "Bring Your Own PIN is disabled on this server (TOKEN_ALLOW_BYOP)")


def _ip(request: web.Request, settings: Settings) -> str:
    return client_ip(request, settings.trusted_proxies)


def _new_user_id() -> str:
    return secrets.token_hex(6)


IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _idempotency(request: web.Request, ip: str) -> tuple[str, str] | None:
    """``(customer_id, registry key)`` for the request's ``Idempotency-Key``, scoped to the client IP; else None.

    Scoping by IP keeps one client's key from reaching another client's session. Both values are derived (one-way)
    so a retry gets the same customer id and the registry returns the session the first attempt created.
    """
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise ValidationFailed.one(IDEMPOTENCY_HEADER, "must be 1-64 characters of A-Z, a-z, 0-9, _ and -")
    scope = f"{ip}\n{key}".encode()
    customer_id = "c" + hashlib.sha256(b"customer\n" + scope).hexdigest()[:12]
    return customer_id, hashlib.sha256(b"create\n" + scope).hexdigest()


@counts_refusals
async def issue_token(request: web.Request) -> web.Response:
    """Zoom's auth sample API: ``{role, expirationSeconds?, userId?, userName?, enableByop?, pin?}`` -> ``{token}``."""
    app = request.app
    settings = app[SETTINGS]
    body = await read_json(request, app[TOKEN_REQUEST])
    if body.enable_byop and not settings.allow_byop:
        raise _byop_refused("enableByop")
    if body.role == RoleType.AGENT:
        return await _agent_token(request, body)
    await app[LIMITS].customer_tokens.hit(_ip(request, settings))
    user_id = _new_user_id() if body.user_id is None else body.user_id
    user_name = user_id if body.user_name is None else body.user_name
    expires_in = body.expiration_s or settings.default_expiry_s
    token, _ = app[SIGNER].sign(RoleType.CUSTOMER, user_id, user_name, expires_in, byop=body.enable_byop)
    CUSTOMER_TOKENS.inc()
    return _token_answer(token)


def _token_answer(token: str) -> web.Response:
    # A JWT is base64url and dots only, so it needs no JSON escaping.
    return web.Response(body=b'{"token":"' + token.encode() + b'"}', content_type="application/json")


async def _agent_token(request: web.Request, body: TokenRequest) -> web.Response:
    """Role 2 on Zoom's sample API: only for a live PIN, with the same checks as ``/api/agent/connect``."""
    app = request.app
    settings = app[SETTINGS]
    if body.pin is not None:
        agent_tokens = app[AGENT_TOKENS]
        admission = await agent_tokens.admit(bearer_key(request), _ip(request, settings))
        issued = await agent_tokens.for_pin(
            admission, body.pin, user_name=body.user_name, expires_in_s=body.expiration_s
        )
        return _token_answer(issued.token)
    if not settings.allow_unbound_agent_tokens:
        await app[ACCOUNTS].authenticate_request(request, *AGENT_ROLES)  # who asks is told first, as elsewhere
        raise Forbidden(
            "an agent token is only issued for a live session: send its `pin` (or use /api/agent/connect)",
            code="agent_token_requires_pin",
        )
    # Migration mode (TOKEN_ALLOW_UNBOUND_AGENT_TOKENS): the sample's behaviour, bound to no session.
    admission = await app[ACCOUNTS].admit(bearer_key(request), app[LIMITS].agent_tokens, ip="")
    account = admission.account.require(*AGENT_ROLES)
    user_name = body.user_name or account.name[: settings.user_name_max_length]
    expires_in = body.expiration_s or settings.default_expiry_s
    token, _ = app[SIGNER].sign(RoleType.AGENT, account.id, user_name, expires_in, byop=body.enable_byop)
    TOKENS_ISSUED.labels("agent").inc()
    log.warning("unbound_agent_token_issued", account_id=account.id, expires_in_s=expires_in)
    return _token_answer(token)


def _zoom_config(settings: Settings) -> dict[str, Any]:
    return {
        "sdk_key": settings.zoom_sdk_key.get_secret_value(),
        "host": settings.zoom_host,
        "simulated": settings.zoom_simulated,
        "sdk_version": settings.zoom_sdk_version,
    }


@counts_refusals
async def customer_start(request: web.Request) -> web.Response:
    """Open a session in the registry and hand the customer page everything it needs to start the SDK."""
    app = request.app
    settings = app[SETTINGS]
    body = await read_json(request, CustomerStart)
    if body.custom_pin is not None and not settings.allow_byop:
        raise _byop_refused("customPin")
    ip = _ip(request, settings)
    idempotency = _idempotency(request, ip)
    await app[LIMITS].starts.hit(ip)
    customer_id, idempotency_key = idempotency or ("c" + _new_user_id(), None)
    custom_pin = body.custom_pin.upper() if body.custom_pin else None
    create = CreateSession(
        queue=body.queue,
        priority=body.priority,
        customer_id=customer_id,
        customer_name=body.user_name,
        client_ip=ip,
        custom_pin=custom_pin,
        idempotency_key=idempotency_key,
    )
    created = await app[SESSIONS].call(create, request_id=get_contextvars().get("request_id"))
    session = created.session
    sdk_token, _ = app[SIGNER].sign(
        RoleType.CUSTOMER,
        customer_id,
        body.user_name or customer_id,
        settings.default_expiry_s,
        byop=custom_pin is not None,
    )
    CUSTOMER_TOKENS.inc()
    log.info("customer_session_started", session_id=session.session_id, queue=session.queue)
    return json_response(
        {
            "session_id": session.session_id,
            "session_token": created.beacon_token,
            "sdk_token": sdk_token,
            "queue": session.queue,
            "state": session.state.value,
            "beacon_url": settings.public_registry_url.rstrip("/") + "/beacons",
            "zoom": _zoom_config(settings),
        }
    )


@counts_refusals
async def agent_connect(request: web.Request) -> web.Response:
    """An authenticated agent trades a live PIN for an agent token and the desk URL."""
    app = request.app
    body = await read_json(request, AgentConnect)
    agent_tokens = app[AGENT_TOKENS]
    issued = await agent_tokens.for_pin(
        await agent_tokens.admit(bearer_key(request), _ip(request, app[SETTINGS])), body.pin
    )
    return web.Response(text=issued.model_dump_json(), content_type="application/json")


async def config(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    urls = {
        "token": settings.public_token_url,
        "registry": settings.public_registry_url,
        "notification": settings.public_notify_url,
    }
    return json_response({"zoom": _zoom_config(settings), "urls": urls})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/", issue_token)
    app.router.add_post("/token", issue_token)
    app.router.add_post("/api/customer/start", customer_start)
    app.router.add_post("/api/agent/connect", agent_connect)
    app.router.add_get("/api/config", config)
    app.router.add_get("/openapi.json", static_file(OPENAPI_PATH))
    app.router.add_get("/demo", static_file(STATIC_DIR / "customer.html"))
    app.router.add_get("/demo/desk", static_file(STATIC_DIR / "desk.html"))
    app.router.add_static("/static/", STATIC_DIR)

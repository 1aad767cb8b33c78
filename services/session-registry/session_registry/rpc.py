"""The ``session-registry`` nats.micro service: create, get and end sessions, resolve PINs for agents.

``create_many`` and ``resolve_many`` take the calls the token service gathered while its last request was in flight
(``shared.rpc_many``): one NATS request and shared Redis round trips for all of them, each answered on its own.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from nats.micro import add_service

from shared.errors import CobrowseError, Conflict, NotFound, ValidationFailed
from shared.keys import JETSTREAM, NATS
from shared.messaging import (
    REGISTRY_CREATE,
    REGISTRY_CREATE_MANY,
    REGISTRY_END,
    REGISTRY_GET,
    REGISTRY_RESOLVE_MANY,
    REGISTRY_RESOLVE_PIN,
    REGISTRY_SERVICE,
    CreatedSession,
    CreateSession,
    EndSession,
    ResolvePin,
    SessionRef,
    SessionView,
)
from shared.rpc import Handlers
from shared.rpc_many import Many, serve_many
from shared.session_tokens import sign_session_token

from .archive import read_archive
from .beacons import REASON_RE, normalise_pin
from .keys import SETTINGS, STORE

__all__ = ["rpc_context"]

log = structlog.get_logger()

QUEUE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,128}")
"""Printable ASCII without spaces: the token service's scoped key (e.g. a hash) becomes part of a Redis key."""
BY_RE = re.compile(r"[A-Za-z0-9_.:@-]{0,64}")
"""Who ended a session: an account id, or ``customer`` for a cancelled help request (notification service)."""

_RESOLVE_ERRORS: dict[str, tuple[type[CobrowseError], str]] = {
    "pin_not_found": (NotFound, "no live session has this PIN"),
    "pin_not_ready": (NotFound, "the session has not confirmed this PIN yet"),
    "pin_retired": (Conflict, "this PIN was retired after too many failed lookups"),
    "agent_limit": (Conflict, "the session has the most agents it can take"),
}


async def rpc_context(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    settings = app[SETTINGS]
    secret = settings.session_token_secret.get_secret_value().encode()

    async def create(request: CreateSession) -> CreatedSession:
        custom = None
        if request.custom_pin is not None:
            custom = normalise_pin(request.custom_pin)
            if custom is None:
                raise ValidationFailed.one("custom_pin", "must be 1-10 letters or digits")
        if not QUEUE_RE.match(request.queue):
            raise ValidationFailed.one("queue", "must be 1-64 letters, digits, '_' or '-'")
        key = request.idempotency_key
        if key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(key):
            raise ValidationFailed.one("idempotency_key", "must be 1-128 printable ASCII characters, no spaces")
        session = await store.create(request.model_copy(update={"custom_pin": custom}))
        log.info("session_registered", session_id=session.session_id, queue=session.queue, version=session.version)
        # The token is a function of the session id, so a retried start gets the very same credential.
        return CreatedSession(session=session, beacon_token=sign_session_token(secret, session.session_id))

    async def get(request: SessionRef) -> SessionView:
        found = await store.views([request.session_id])
        if found:
            return found[0]
        # Gone from Redis (past its retention): the last published view, from JetStream.
        archived = await read_archive(app[JETSTREAM], request.session_id, timeout_s=settings.publish_timeout_s)
        if archived is None:
            raise NotFound(f"no session {request.session_id}", code="session_not_found")
        return archived.session

    async def end(request: EndSession) -> SessionView:
        # Both land in the history and the published event: bounded, and nothing a consumer must escape.
        if not REASON_RE.fullmatch(request.reason):
            raise ValidationFailed.one("reason", "must be 1-64 of a-z, 0-9 and '_' (e.g. cancelled)")
        if not BY_RE.fullmatch(request.by):
            raise ValidationFailed.one("by", "must be at most 64 letters, digits or '_.:@-'")
        session = await store.end(request.session_id, request.reason, by=request.by)
        log.info("session_end_requested", session_id=request.session_id, reason=request.reason, by=request.by)
        return session

    async def resolve(request: ResolvePin) -> SessionView:
        pin = normalise_pin(request.pin)
        if pin is None:
            raise ValidationFailed.one("pin", "must be 1-10 letters or digits")
        result = await store.resolve(pin)
        if result.session is None:
            # The PIN itself stays out of the logs: it is what lets an agent into a customer's screen.
            log.info("pin_resolve_failed", agent_id=request.agent_id, reason=result.error, misses=result.misses)
            code = result.error if result.error in _RESOLVE_ERRORS else "pin_not_found"
            error_class, message = _RESOLVE_ERRORS[code]
            raise error_class(message, code=code)
        return result.session

    handlers = Handlers.for_redis_pool(settings.redis_pool_size)
    service = await add_service(
        app[NATS], name=REGISTRY_SERVICE, version="1.0.0", description="cobrowse session registry"
    )
    for name, subject, handle in [
        ("create", REGISTRY_CREATE, handlers.endpoint(CreateSession, create)),
        ("create-many", REGISTRY_CREATE_MANY, handlers.endpoint(Many[CreateSession], serve_many(create))),
        ("get", REGISTRY_GET, handlers.endpoint(SessionRef, get)),
        ("end", REGISTRY_END, handlers.endpoint(EndSession, end)),
        ("resolve", REGISTRY_RESOLVE_PIN, handlers.endpoint(ResolvePin, resolve)),
        ("resolve-many", REGISTRY_RESOLVE_MANY, handlers.endpoint(Many[ResolvePin], serve_many(resolve))),
    ]:
        await service.add_endpoint(name=name, subject=subject, handler=handle)
    # The server knows our subscriptions once this returns, so a request sent after start-up finds a responder.
    await app[NATS].flush()
    yield
    await handlers.stop(service)

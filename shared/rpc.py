"""Request/reply over NATS with ``nats.micro``: typed endpoints on the server side, typed calls on the client side.

Errors cross the wire as micro service errors: ``Nats-Service-Error-Code`` holds the HTTP status,
``Nats-Service-Error`` the stable error code and the body the usual ``{"error": {...}}`` JSON, so a
``CobrowseError`` raised in one service comes out of ``call`` in another as a ``RemoteError`` with the same
status and code. Unexpected exceptions are logged with a traceback and answered with a generic 500.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.micro.request import Request
from nats.micro.service import Service
from pydantic import BaseModel, ValidationError
from structlog.contextvars import bound_contextvars

from .errors import CobrowseError, RemoteError, Unavailable, ValidationFailed
from .messaging import Message
from .outages import outage_of

__all__ = ["Handlers", "call", "endpoint", "error_reply", "stop_service"]

log = structlog.get_logger()

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ERROR_HEADER = "Nats-Service-Error"
REQUEST_ID_HEADER = "X-Request-ID"


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``[{property, reason}]``, one entry per bad field."""
    return [{"property": ".".join(str(p) for p in err["loc"]) or "body", "reason": err["msg"]} for err in exc.errors()]


def endpoint(
    request_model: type[Req], handler: Callable[[Req], Awaitable[Message]]
) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """Wrap a typed handler as a ``nats.micro`` handler."""

    async def handle(req: Request) -> None:
        request_id = (req.headers or {}).get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        with bound_contextvars(subject=req.subject, request_id=request_id):
            try:
                payload = request_model.model_validate_json(req.data)
                reply = await handler(payload)
            except Exception as exc:
                await _respond_error(req, error_reply(exc))
            else:
                await req.respond(reply.encode())

    return handle


def error_reply(exc: Exception) -> CobrowseError:
    """What the caller gets for ``exc``, raised by a handler (logged here): our own error as it is, a bad payload as
    ``validation_failed``, an outage as ``unavailable``, anything else as a generic 500 (with a traceback in the log).
    """
    if isinstance(exc, ValidationError):
        return ValidationFailed(validation_errors(exc))
    if isinstance(exc, CobrowseError):
        log.info("rpc_rejected", code=exc.code, status=exc.status)
        return exc
    dependency = outage_of(exc)
    if dependency is None:
        log.error("rpc_failed", exc_info=exc)
        return CobrowseError()
    log.warning("rpc_unavailable", dependency=dependency, error=type(exc).__name__)
    return Unavailable(f"{dependency} unavailable, retry")


async def _respond_error(req: Request, exc: CobrowseError) -> None:
    await req.respond_error(str(exc.status), exc.code, data=json.dumps(exc.to_dict()).encode())


RETRY_DELAY_S = 0.25
"""Pause before the one retry: long enough for a NATS client to move to another node of a cluster."""


async def call(
    nc: NatsClient,
    subject: str,
    request: Message,
    reply_model: type[Rep],
    *,
    timeout_s: float = 2.0,
    request_id: str | None = None,
    idempotent: bool = False,
) -> Rep:
    """Send ``request`` and return the typed reply; remote errors are raised as ``RemoteError``.

    A node lost from a NATS cluster must not be a 503: "no responders" (the request reached no handler) is retried
    once always; a timeout (a handler may have acted) only for an ``idempotent`` request. ``Unavailable`` after that.
    """
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    data = request.encode()
    for attempt in (1, 2):
        try:
            msg = await nc.request(subject, data, timeout=timeout_s, headers=headers)
            break
        except (NoRespondersError, NatsTimeoutError) as exc:
            retry = isinstance(exc, NoRespondersError) or idempotent
            if attempt == 2 or not retry:
                raise Unavailable(f"no answer on {subject}") from exc
            log.info("rpc_retry", subject=subject, error=type(exc).__name__)
            await asyncio.sleep(RETRY_DELAY_S)
    if msg.headers and ERROR_CODE_HEADER in msg.headers:
        status = int(msg.headers[ERROR_CODE_HEADER])
        code = msg.headers.get(ERROR_HEADER, "internal")
        try:
            message = json.loads(msg.data)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = code
        raise RemoteError(status, code, message)
    return reply_model.model_validate_json(msg.data)


class Handlers:
    """The requests a service is handling: each in its own task, at most ``max_in_flight`` at once.

    A NATS subscription runs its callback one message at a time, so a handler awaiting Redis would hold every request
    behind it, and concurrent requests could never share a round trip (``batching.py``). Past ``max_in_flight`` the
    subscription waits for a slot (its pending messages queue in nats-py, within the subscription's limits).
    ``stop`` stops the service, then waits up to ``stop_wait_s`` for the requests in flight to be answered.
    """

    @classmethod
    def for_redis_pool(cls, pool_size: int) -> Handlers:
        """At most half the Redis pool in flight: a request holds at most one connection at a time, and the other
        half is left to scripts and loops (a cluster pool refuses a connection past its size instead of waiting)."""
        return cls(max_in_flight=max(1, pool_size // 2))

    def __init__(self, *, max_in_flight: int, stop_wait_s: float = 5.0) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop_wait_s = stop_wait_s

    def endpoint(
        self, request_model: type[Req], handler: Callable[[Req], Awaitable[Message]]
    ) -> Callable[[Request], Awaitable[None]]:
        """``endpoint(request_model, handler)``, each request in a task of its own."""
        handle = endpoint(request_model, handler)

        async def spawn(req: Request) -> None:
            await self._slots.acquire()
            task = asyncio.create_task(handle(req))
            self._tasks.add(task)
            task.add_done_callback(self._done)

        return spawn

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The handler's own errors are answered in ``endpoint``: this is the answer itself failing (NATS gone).
            log.warning("rpc_reply_failed", error=repr(exc))

    async def stop(self, service: Service) -> None:
        await stop_service(service)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._stop_wait_s)


async def stop_service(service: Service) -> None:
    """Stop a micro service at shutdown; with NATS unreachable there is nothing to unsubscribe from, so say so."""
    try:
        await service.stop()
    except NatsError as exc:
        log.info("rpc_service_not_stopped", service=service.info().name, error=type(exc).__name__)

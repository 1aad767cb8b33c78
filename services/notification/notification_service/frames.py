"""Frames that clients send on the agent and dashboard WebSockets, validated at the edge, and the auth frame.

A frame that is not JSON (or nests too deep, or holds a non-finite number: ``shared.jsonbody``), not an object,
of an unknown type or with bad fields is answered with an ``error`` frame naming the problem; the socket stays
open. Once a socket is upgraded nothing may answer it with HTTP: a failure (a Redis or NATS outage included) is an
``error`` frame and a close (``close_on_error``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from nats.errors import Error as NatsError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from redis.exceptions import RedisError

from shared.accounts import Account
from shared.errors import BadRequest, CobrowseError, Unauthorized, Unavailable, ValidationFailed
from shared.jsonbody import parse_json
from shared.keys import WEBSOCKETS
from shared.rpc import validation_errors

__all__ = [
    "QUEUE_PATTERN",
    "AgentFrame",
    "Auth",
    "Claim",
    "Decline",
    "Ping",
    "Release",
    "Status",
    "authenticate_socket",
    "close_on_error",
    "error_frame",
    "parse",
    "send_error",
    "serve_upgraded",
]

QUEUE_PATTERN = r"[A-Za-z0-9_-]{1,64}"
"""Queue names: they are NATS subject tokens (``cobrowse.queue.<queue>.<type>``)."""
QueueName = Annotated[str, Field(pattern=f"^{QUEUE_PATTERN}$")]
SessionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Auth(_Frame):
    type: Literal["auth"]
    api_key: str | None = Field(None, max_length=256)
    ticket: str | None = Field(None, max_length=256)


class Status(_Frame):
    type: Literal["status"]
    status: Literal["available", "away"]
    queues: list[QueueName] = Field(default_factory=list, max_length=50)
    capacity: int = Field(1, ge=1, le=50)


class Claim(_Frame):
    type: Literal["claim"]
    session_id: SessionId


class Decline(_Frame):
    type: Literal["decline"]
    session_id: SessionId


class Release(_Frame):
    type: Literal["release"]
    session_id: SessionId


class Ping(_Frame):
    type: Literal["ping"]


AgentFrame = Annotated[Auth | Status | Claim | Decline | Release | Ping, Field(discriminator="type")]
_AGENT_FRAME: TypeAdapter[Auth | Status | Claim | Decline | Release | Ping] = TypeAdapter(AgentFrame)
_AUTH_FRAME: TypeAdapter[Auth] = TypeAdapter(Auth)


def parse(raw: str, *, auth_only: bool = False) -> Auth | Status | Claim | Decline | Release | Ping:
    """Decode one client frame; raises ``BadRequest``/``ValidationFailed`` describing what is wrong."""
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise ValidationFailed.one("frame", "must be a JSON object")
    try:
        return (_AUTH_FRAME if auth_only else _AGENT_FRAME).validate_python(data)
    except ValidationError as exc:
        raise ValidationFailed(validation_errors(exc)) from exc


def error_frame(exc: CobrowseError, **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message, **extra}
    if isinstance(exc, ValidationFailed):
        frame["errors"] = exc.errors
    return frame


async def send_error(ws: web.WebSocketResponse, exc: CobrowseError, **extra: Any) -> None:
    if not ws.closed:
        await ws.send_json(error_frame(exc, **extra))


log = structlog.get_logger()

CLOSE_UNAUTHORIZED = 4401
CLOSE_RATE_LIMITED = 4429


def as_error(exc: Exception) -> CobrowseError:
    """What a client is told about ``exc``: ours as they are, an outage as ``unavailable``, a bug as ``internal``."""
    if isinstance(exc, CobrowseError):
        return exc
    if isinstance(exc, RedisError | NatsError | OSError | TimeoutError):
        log.warning("socket_dependency_failed", error=type(exc).__name__)
        return Unavailable()
    log.error("socket_failed", exc_info=exc)
    return CobrowseError()


def close_code(exc: CobrowseError) -> int:
    """4429 past a cap, 1013 (try again later) in an outage, 1011 on a bug, else 4401 (not authenticated)."""
    if exc.status == 429:
        return CLOSE_RATE_LIMITED
    if exc.status == 503:
        return WSCloseCode.TRY_AGAIN_LATER
    return WSCloseCode.INTERNAL_ERROR if exc.status >= 500 else CLOSE_UNAUTHORIZED


async def close_on_error(ws: web.WebSocketResponse, exc: Exception) -> None:
    """End an upgraded socket after ``exc``: an error frame, then a close code that says what kind of failure."""
    error = as_error(exc)
    try:
        await send_error(ws, error)
        await ws.close(code=close_code(error), message=error.code.encode())
    except (ConnectionError, RuntimeError):
        pass  # the client is gone already


async def serve_upgraded(request: web.Request, ws: web.WebSocketResponse, serve: Callable[[], Awaitable[None]]) -> None:
    """Upgrade, keep ``ws`` for shutdown, run ``serve``; a failure after the upgrade is an error frame and a close."""
    await ws.prepare(request)
    request.app[WEBSOCKETS].add(ws)
    try:
        await serve()
    except Exception as exc:
        await close_on_error(ws, exc)
    finally:
        request.app[WEBSOCKETS].discard(ws)


Check = Callable[[Auth], Awaitable[Account]]


async def authenticate_socket(ws: web.WebSocketResponse, timeout_s: float, check: Check) -> Account | None:
    """Wait for the ``auth`` frame and ``check`` it; on failure send an error frame, close and return ``None``."""
    try:
        msg = await ws.receive(timeout=timeout_s)
    except TimeoutError:
        await close_on_error(ws, Unauthorized("no auth frame in time", code="auth_timeout"))
        return None
    try:
        if msg.type != WSMsgType.TEXT:
            raise BadRequest("expected an auth frame", code="auth_required")
        frame = parse(msg.data, auth_only=True)
        if not isinstance(frame, Auth):
            raise BadRequest("expected an auth frame", code="auth_required")
        return await check(frame)
    except Exception as exc:
        await close_on_error(ws, exc)
    return None

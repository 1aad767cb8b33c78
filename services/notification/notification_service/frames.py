"""Frames that clients send on the agent and dashboard WebSockets, validated at the edge, and the auth frame.

A frame that is not JSON, not an object, of an unknown type or with bad fields is answered with an
``error`` frame naming the problem; the socket stays open.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.accounts import Account
from shared.errors import BadRequest, CobrowseError, Unauthorized, ValidationFailed
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
    "error_frame",
    "parse",
    "send_error",
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
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("frame is not valid JSON", code="malformed_json") from exc
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


CLOSE_UNAUTHORIZED = 4401

Check = Callable[[Auth], Awaitable[Account]]


async def authenticate_socket(ws: web.WebSocketResponse, timeout_s: float, check: Check) -> Account | None:
    """Wait for the ``auth`` frame and ``check`` it; on failure send an error frame, close and return ``None``."""
    try:
        msg = await ws.receive(timeout=timeout_s)
        if msg.type != WSMsgType.TEXT:
            raise BadRequest("expected an auth frame", code="auth_required")
        frame = parse(msg.data, auth_only=True)
        if not isinstance(frame, Auth):
            raise BadRequest("expected an auth frame", code="auth_required")
        return await check(frame)
    except TimeoutError:
        await send_error(ws, Unauthorized("no auth frame in time", code="auth_timeout"))
    except CobrowseError as exc:
        await send_error(ws, exc)
    await ws.close(code=CLOSE_UNAUTHORIZED, message=b"unauthorized")
    return None

"""A local stand-in for Zoom's cobrowse REST API (``GET /cobrowsesdk/sessions/{id}``), for tests.

It checks the JWT the registry signs (HS256 with the API secret, ``iss`` = API key, ``exp`` in the future) and
answers Zoom's session-details shape (facts §9.2). Tests script faults: ``fail_next`` answers the next calls with an
error status, ``delay_s`` holds every answer, and the server can be started late or stopped (``ZoomApiStandIn``).
Each call is recorded (``calls``) and awaitable (``wait_calls``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field

import jwt
from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = ["API_KEY", "API_SECRET", "ZoomApiStandIn", "free_port"]

API_KEY = "test-zoom-api-key"
API_SECRET = "test-zoom-api-secret-never-logged-7c1e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Call:
    session_id: str
    status: int
    at: float = field(default_factory=time.monotonic)


class ZoomApiStandIn:
    """``sessions`` maps Zoom session ids to their PINs; unknown ids answer 404 as Zoom does."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.sessions: dict[str, str] = {}
        self.calls: list[Call] = []
        self.fail_next: list[int] = []
        self.delay_s = 0.0
        self._server: TestServer | None = None
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/cobrowsesdk/sessions/{session_id}", self._session)
        self._server = TestServer(app, host="127.0.0.1", port=self.port)
        await self._server.start_server()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def wait_calls(self, count: int, within_s: float = 5.0) -> list[Call]:
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(lambda: len(self.calls) >= count)
        return self.calls

    async def _session(self, request: web.Request) -> web.Response:
        call = Call(request.match_info["session_id"], status=0)  # recorded on arrival: a slow answer may never go
        status, body = self._answer(request, call.session_id)
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)  # a slow Zoom, not a wait in a test
        call.status = status
        return web.json_response(body, status=status)

    def _answer(self, request: web.Request, session_id: str) -> tuple[int, dict[str, object]]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, API_SECRET, algorithms=["HS256"], options={"require": ["exp", "iss"]})
        except jwt.PyJWTError:
            return 401, {"code": 124, "message": "Invalid access token."}
        if scheme != "Bearer" or claims["iss"] != API_KEY or claims["exp"] > time.time() + 120:
            return 401, {"code": 124, "message": "Invalid access token."}
        if self.fail_next:
            return self.fail_next.pop(0), {"code": 500, "message": "scripted failure"}
        pin = self.sessions.get(session_id)
        if pin is None:
            return 404, {"code": 3001, "message": "Session does not exist."}
        return 200, {
            "session_id": session_id,
            "session_pin": pin,
            "start_time": "2026-11-30T09:00:00Z",
            "user_count": 2,
        }

"""A scripted stand-in of the notification service's agent socket, serving the real console page.

The end-to-end tests drive the console against the real services; this stand-in lets a test send the frames of a
contract (docs/api.md, "Agent socket") exactly when it wants, e.g. a `session_ended` in the middle of a desk, and
read back every frame the page sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

STATIC = Path(__file__).parents[2] / "services/notification/notification_service/static"


@dataclass
class AgentSocket:
    """What the page sent (`received`), and the open socket to send frames on."""

    sessions: list[dict[str, str]] = field(default_factory=list)  # the `ready` frame's live sessions
    received: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    ws: web.WebSocketResponse | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None, "the page has no socket open"
        await self.ws.send_json(frame)

    async def wait_for(self, frame_type: str, count: int = 1) -> list[dict[str, Any]]:
        def matching() -> list[dict[str, Any]]:
            return [f for f in self.received if f.get("type") == frame_type]

        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(lambda: len(matching()) >= count)
        return matching()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            async with self.changed:
                self.received.append(frame)
                self.changed.notify_all()
            if frame["type"] == "auth":
                self.ws = ws
                await ws.send_json(
                    {
                        "type": "ready",
                        "agent_id": "agt_1",
                        "name": "Lee",
                        "status": "available",
                        "queues": ["support"],
                        "capacity": 2,
                        "sessions": self.sessions,
                        "offer_timeout_s": 30,
                        "heartbeat_s": 20,
                    }
                )
        return ws

    def claimed(self, session_id: str, pin: str) -> dict[str, Any]:
        """The `claimed` frame the service answers a claim with (its desk is a small local page)."""
        return {
            "type": "claimed",
            "session_id": session_id,
            "queue": "support",
            "pin": pin,
            "token": "t",
            "desk_url": f"/desk-stub?pin={pin}",
            "expires_at": 0,
        }


def console_app(socket: AgentSocket) -> web.Application:
    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "agent.html")

    async def desk(request: web.Request) -> web.Response:
        return web.Response(text=f"<!doctype html><title>desk</title><p id=pin>{request.query['pin']}</p>")

    app = web.Application()
    app.router.add_get("/agent", page)
    app.router.add_get("/desk-stub", desk)
    app.router.add_get("/ws/agent", socket.handle)
    app.router.add_static("/static", STATIC)
    return app

"""A scripted stand-in of the desk's customer APIs, serving the real customer demo page and beacon.js.

The end-to-end tests run the page against the real services; this stand-in lets a test set exactly what
`GET /api/requests/{id}` answers (an agent's name, no agent serving the queue, ...), make `POST
/api/customer/start` fail once, choose the Zoom settings of `/api/config`, and read every request the page made.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .recorder import BEACON_JS, Recorder

TOKEN_STATIC = Path(__file__).parents[2] / "services/token/token_service/static"


@dataclass
class DeskApi:
    zoom: dict[str, Any] = field(default_factory=lambda: {"simulated": True, "host": "cdn.test", "sdk_key": "KEY"})
    status: dict[str, Any] = field(
        default_factory=lambda: {"state": "queued", "position": 1, "estimated_wait_s": 60, "no_agents": False}
    )
    beacons: Recorder = field(default_factory=Recorder)
    start_keys: list[str | None] = field(default_factory=list)  # Idempotency-Key of every start POST
    fail_starts: int = 0
    cancels: list[str] = field(default_factory=list)
    polled: asyncio.Event = field(default_factory=asyncio.Event)

    async def config(self, request: web.Request) -> web.Response:
        origin = f"{request.scheme}://{request.host}"
        return web.json_response({"zoom": self.zoom, "urls": {"registry": origin, "notification": origin}})

    async def start(self, request: web.Request) -> web.Response:
        self.start_keys.append(request.headers.get("Idempotency-Key"))
        if self.fail_starts:
            self.fail_starts -= 1
            return web.json_response({"error": {"code": "unavailable", "message": "test"}}, status=503)
        n = len(self.start_keys)
        return web.json_response(
            {
                "session_id": f"sess-{n}",
                "session_token": f"tok-{n}",
                "sdk_token": "a.b.c",
                "queue": "support",
                "state": "waiting",
                "beacon_url": f"{request.scheme}://{request.host}/beacons",
                "zoom": self.zoom,
            }
        )

    async def request_status(self, request: web.Request) -> web.Response:
        self.polled.set()
        return web.json_response({"session_id": request.match_info["session_id"], **self.status})

    async def cancel(self, request: web.Request) -> web.Response:
        self.cancels.append(request.match_info["session_id"])
        return web.json_response({"session_id": request.match_info["session_id"], "state": "cancelled"})

    async def next_poll(self) -> None:
        """Wait for the page's next `GET /api/requests/{id}` (the answer it gets is `status` as of then)."""
        self.polled.clear()
        async with asyncio.timeout(10):
            await self.polled.wait()


def desk_api_app(api: DeskApi) -> web.Application:
    async def demo(request: web.Request) -> web.FileResponse:
        return web.FileResponse(TOKEN_STATIC / "customer.html")

    async def beacon(request: web.Request) -> web.FileResponse:
        return web.FileResponse(BEACON_JS, headers={"Content-Type": "application/javascript"})

    app = web.Application()
    app.router.add_get("/demo", demo)
    app.router.add_get("/beacon.js", beacon)
    app.router.add_route("*", "/beacons", api.beacons.handle)
    app.router.add_get("/api/config", api.config)
    app.router.add_post("/api/customer/start", api.start)
    app.router.add_get("/api/requests/{session_id}", api.request_status)
    app.router.add_delete("/api/requests/{session_id}", api.cancel)
    app.router.add_static("/static", TOKEN_STATIC)
    return app

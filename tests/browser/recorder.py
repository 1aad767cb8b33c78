"""A stand-in session registry for the beacon tests: it records every beacon POST and can fail on demand.

The test page and the recorder run on different ports, so the page talks to the recorder cross-origin, as a
customer's site talks to the registry.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

BEACON_JS = Path(__file__).parents[2] / "services/session-registry/session_registry/static/beacon.js"

CORS = {"Access-Control-Allow-Origin": "*"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>beacon test page</title></head>
<body><h1>host page</h1>
<script src="/beacon.js"></script>
<script>
  // The smallest object shaped like the SDK session: on(name, handler) and a way for the test to emit.
  window.fakeSession = {
    handlers: {},
    on(name, handler) { (this.handlers[name] = this.handlers[name] || []).push(handler); },
    emit(name, payload) { (this.handlers[name] || []).forEach((h) => h(payload)); },
  };
  window.beaconErrors = [];
  // Every fetch the beacon makes, with the page clock's time of the call (for the send-at-once deadline).
  window.posts = [];
  const realFetch = window.fetch.bind(window);
  window.fetch = (url, init) => {
    window.posts.push({ at: performance.now(), body: JSON.parse(init.body) });
    return realFetch(url, init);
  };
  window.attachBeacon = (options) => {
    window.beacon = CobrowseBeacon.attach(window.fakeSession, Object.assign({
      url: "%BEACON_URL%", sessionId: "sess-1", token: "tok-1", heartbeatMs: 0,
      onError: (error, context) => window.beaconErrors.push(context),
    }, options || {}));
    return true;
  };
</script></body></html>
"""


@dataclass
class Recorder:
    batches: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    preflights: int = 0
    failures: int = 0
    fail_next: int = 0
    refuse: set[str] = field(default_factory=set)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for batch in self.batches for event in batch["events"]]

    def names(self) -> list[str]:
        return [event["name"] for event in self.events]

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            self.preflights += 1
            return web.Response(status=204, headers=CORS)
        body = await request.text()
        async with self.changed:
            if self.fail_next:
                self.fail_next -= 1
                self.failures += 1
                self.changed.notify_all()
                return web.json_response(
                    {"error": {"code": "unavailable", "message": "test"}}, status=503, headers=CORS
                )
            batch = json.loads(body)
            self.batches.append(batch)
            self.content_types.append(request.headers.get("Content-Type", ""))
            self.changed.notify_all()
        # Per-event answers as the registry gives them (contract 10): refused events by index, 400 if all are.
        refused = [i for i, event in enumerate(batch["events"]) if event["name"] in self.refuse]
        if refused and len(refused) == len(batch["events"]):
            errors = [{"property": f"events.{i}.name", "reason": "unknown event"} for i in refused]
            return web.json_response(
                {"error": {"code": "bad_request", "message": "test"}, "errors": errors}, status=400, headers=CORS
            )
        answer = {
            "accepted": len(batch["events"]) - len(refused),
            "duplicates": 0,
            "ignored": 0,
            "state": "waiting",
            "rejected": [{"index": i, "property": f"events.{i}.name", "reason": "unknown event"} for i in refused],
        }
        return web.json_response(answer, status=202, headers=CORS)

    async def wait_for(self, predicate: Callable[[Recorder], bool]) -> None:
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(lambda: predicate(self))


def recorder_app(recorder: Recorder) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/beacons", recorder.handle)
    return app


def page_app(beacon_url: str) -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE.replace("%BEACON_URL%", beacon_url), content_type="text/html")

    async def script(request: web.Request) -> web.FileResponse:
        return web.FileResponse(BEACON_JS, headers={"Content-Type": "application/javascript"})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/beacon.js", script)
    return app

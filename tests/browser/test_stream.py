"""stream.js (the dashboard's SSE client) against a stand-in stream that drops it mid-way, as a stalled replay does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser
from pytest_aiohttp import AiohttpServer

pytestmark = pytest.mark.browser

STATIC = Path(__file__).parents[2] / "services/notification/notification_service/static"

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>stream test</title><script src="/static/stream.js"></script></head><body><script>
  window.frames_ = [];
  window.states = [];
  window.follow = () => window.cbStream.follow("/events", "key", {
    onFrame: (frame, lastId) => window.frames_.push([frame.type, frame.id === undefined ? null : frame.id, lastId]),
    onState: (state, detail) => window.states.push([state, detail]),
  });
  window.replayed = null;
  window.replay = async (fromId, toId) => {
    const got = [];
    await window.cbStream.replay("/events", "key", fromId, toId, (frame) => got.push(frame.id));
    window.replayed = got;
  };
</script></body></html>"""


def sse(frame: dict[str, Any]) -> bytes:
    head = f"id: {frame['id']}\n" if "id" in frame else ""
    return f"{head}data: {json.dumps(frame)}\n\n".encode()


class DroppingStream:
    """First connection: events 1..3, then `dropped` naming 2 as the last one sent, and the response left open.
    Later connections: everything after their Last-Event-ID up to 5, then closed."""

    def __init__(self) -> None:
        self.last_event_ids: list[str | None] = []
        self.stalled = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.last_event_ids.append(request.headers.get("Last-Event-ID"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        start = int(request.headers.get("Last-Event-ID", "0"))
        if len(self.last_event_ids) == 1:
            for n in range(start + 1, start + 3):
                await response.write(sse({"type": "event", "id": n}))
            await response.write(sse({"type": "dropped", "reason": "replay_stalled", "last_id": start + 2}))
            await self.stalled.wait()  # a stalled server does not close: the client must go by itself
            return response
        for n in range(start + 1, 6):
            await response.write(sse({"type": "event", "id": n}))
        return response


@pytest.fixture(name="stream")
def _stream() -> DroppingStream:
    return DroppingStream()


@pytest.fixture(name="page_url")
async def _page_url(aiohttp_server: AiohttpServer, stream: DroppingStream) -> AsyncIterator[str]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/events", stream.handle)
    app.router.add_static("/static", STATIC)
    server = await aiohttp_server(app)
    yield str(server.make_url("/"))
    stream.stalled.set()


async def test_a_dropped_frame_resumes_from_its_last_id_at_once(
    browser: Browser, page_url: str, stream: DroppingStream
) -> None:
    page = await browser.new_page()
    await page.goto(page_url)
    await page.evaluate("() => { window.handle = window.follow(); }")
    await page.wait_for_function("() => window.frames_.filter((f) => f[0] === 'event').length === 5")

    assert stream.last_event_ids == [None, "2"]
    frames = await page.evaluate("() => window.frames_")
    assert frames == [
        ["event", 1, 1],
        ["event", 2, 2],
        ["dropped", None, 2],
        ["event", 3, 3],
        ["event", 4, 4],
        ["event", 5, 5],
    ]
    states = await page.evaluate("() => window.states")
    assert states[:3] == [["live", None], ["reconnecting", 2], ["live", 2]]
    await page.evaluate("() => window.handle.close()")
    await page.close()


async def test_a_replay_dropped_midway_carries_on_from_the_last_event_sent(
    browser: Browser, page_url: str, stream: DroppingStream
) -> None:
    page = await browser.new_page()
    await page.goto(page_url)
    await page.evaluate("() => window.replay(0, 5)")
    await page.wait_for_function("() => window.replayed !== null")
    assert await page.evaluate("() => window.replayed") == [1, 2, 3, 4, 5]
    assert stream.last_event_ids == ["0", "2"]
    await page.close()

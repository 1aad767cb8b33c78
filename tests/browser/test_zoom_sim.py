"""The simulated Zoom SDK (token service /static/zoom-sim.js): the surface and events the pages rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page
from pytest_aiohttp import AiohttpServer

pytestmark = pytest.mark.browser

ZOOM_SIM = Path(__file__).parents[2] / "services/token/token_service/static/zoom-sim.js"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlX3R5cGUiOjF9.c2lnbmF0dXJl"

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>sim</title></head><body><script src="/zoom-sim.js"></script><script>
  window.events = [];
  window.ready = new Promise((resolve) => ZoomCobrowseSDK.init({}, ({ success, session }) => {
    for (const name of ["pincode_updated", "session_started", "agent_joined", "agent_left", "session_ended",
                        "session_error", "remote_assist_started"]) {
      session.on(name, (payload) => window.events.push([name, payload]));
    }
    window.session = session;
    resolve(success);
  }));
  // Resolves with the events once `count` of them arrived.
  window.eventsAfter = (count) => new Promise((resolve) => {
    const check = () => (window.events.length >= count ? resolve(window.events) : setTimeout(check, 10));
    check();
  });
</script></body></html>"""


@pytest.fixture(name="page")
async def _page(browser: Browser, aiohttp_server: AiohttpServer) -> AsyncIterator[Page]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def script(request: web.Request) -> web.FileResponse:
        return web.FileResponse(ZOOM_SIM, headers={"Content-Type": "application/javascript"})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/zoom-sim.js", script)
    server = await aiohttp_server(app)
    page_ = await browser.new_page()
    await page_.goto(str(server.make_url("/")))
    assert await page_.evaluate("() => window.ready") is True
    yield page_
    await page_.close()


async def events_after(page: Page, count: int) -> list[list[Any]]:
    events: list[list[Any]] = await page.evaluate("(n) => window.eventsAfter(n)", count)
    return events


async def test_start_reports_a_six_digit_pin_then_session_started(page: Page) -> None:
    assert await page.evaluate("() => ZoomCobrowseSDK.simulated") is True
    assert await page.evaluate("() => session.getSessionInfo().sessionStatus") == "session_not_started"
    await page.evaluate("(jwt) => session.start({ sdkToken: jwt })", JWT)

    events = await events_after(page, 2)
    assert [name for name, _ in events] == ["pincode_updated", "session_started"]
    pin = events[0][1]["pinCode"]
    assert len(pin) == 6 and pin.isdigit()
    assert await page.evaluate("() => session.getSessionInfo()") == {
        "sessionStatus": "session_started",
        "pinCode": pin,
        "simulated": True,
    }


async def test_a_bad_token_or_pin_gives_the_sdk_errors(page: Page) -> None:
    await page.evaluate("() => session.start({ sdkToken: 'not-a-jwt' })")
    await page.evaluate("(jwt) => session.start({ sdkToken: jwt, customPinCode: 'no spaces!' })", JWT)
    events = await events_after(page, 2)
    assert sorted(payload["code"] for _, payload in events) == [1008, 2001]


async def test_custom_pins_are_upper_cased_and_agent_joins_are_reported_once(page: Page) -> None:
    await page.evaluate("(jwt) => session.start({ sdkToken: jwt, customPinCode: 'ab12cd' })", JWT)
    await events_after(page, 2)
    joined = await page.evaluate(
        "() => [ZoomCobrowseSDK.simulation.agentJoined({userId: 'a1', name: 'Ana'}),"
        " ZoomCobrowseSDK.simulation.agentJoined({userId: 'a1', name: 'Ana'})]"
    )
    assert joined == [True, False]
    events = await events_after(page, 3)
    assert events[0] == ["pincode_updated", {"pinCode": "AB12CD"}]
    assert events[2] == ["agent_joined", {"userId": "a1", "name": "Ana", "simulated": True}]


async def test_a_reload_makes_the_session_recoverable_and_join_resumes_it(page: Page) -> None:
    await page.evaluate("(jwt) => session.start({ sdkToken: jwt })", JWT)
    pin = (await events_after(page, 2))[0][1]["pinCode"]

    await page.reload()
    assert await page.evaluate("() => window.ready") is True
    assert await page.evaluate("() => session.getSessionInfo()") == {
        "sessionStatus": "session_recoverable",
        "pinCode": pin,
        "simulated": True,
    }
    result = await page.evaluate("() => new Promise((resolve) => session.join(resolve))")
    assert result == {"success": True}
    assert await events_after(page, 1) == [["session_started", {"recovered": True}]]

    await page.evaluate("() => session.end()")
    assert (await events_after(page, 2))[1] == ["session_ended", {"reason": "customer"}]
    await page.reload()
    assert await page.evaluate("() => window.ready") is True
    assert await page.evaluate("() => session.getSessionInfo().sessionStatus") == "session_not_started"

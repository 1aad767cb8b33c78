"""The customer demo page (token service /demo) against a scripted stand-in of the desk's APIs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, Page, Route, expect
from pytest_aiohttp import AiohttpServer

from .desk_api import TOKEN_STATIC, DeskApi, desk_api_app

pytestmark = pytest.mark.browser

# Zoom's CDN build after a reload, as issue 10 found it: join() neither calls back nor emits session_started, and
# the session info has no PIN. JOIN_EMITS names the one event it does emit (or none).
SILENT_JOIN = """
(function () {
  var init = ZoomCobrowseSDK.init;
  ZoomCobrowseSDK.init = function (settings, cb) {
    init(settings, function (result) {
      var s = result.session;
      if (!s.silenced) {
        s.silenced = true;
        var info = s.getSessionInfo.bind(s);
        s.getSessionInfo = function () { var i = info(); delete i.pinCode; return i; };
        s.join = function () {
          if (window.JOIN_EMITS) setTimeout(function () { s.emit(window.JOIN_EMITS, { userId: "u1" }); }, 50);
        };
      }
      cb(result);
    });
  };
})();
"""

# An SDK whose end() never reports session_ended.
SILENT_END = """
(function () {
  var init = ZoomCobrowseSDK.init;
  ZoomCobrowseSDK.init = function (settings, cb) {
    init(settings, function (result) {
      var s = result.session;
      var emit = s.emit.bind(s);
      s.emit = function (name, payload) { if (name !== "session_ended") emit(name, payload); };
      cb(result);
    });
  };
})();
"""


@dataclass
class Customer:
    page: Page
    api: DeskApi
    url: str
    errors: list[str]

    async def get_help(self) -> str:
        await self.page.get_by_role("button", name="Get help").click()
        # The click shows "starting" at once; "waiting" comes with this request's PIN (#pin may hold the last one).
        await expect(self.page.locator('#help [data-view="waiting"]')).to_be_visible()
        await expect(self.page.locator("#pin")).to_have_text(re.compile(r"^\d{6}$"))
        return await self.page.locator("#pin").inner_text()


async def open_customer(
    browser: Browser, server: AiohttpServer, api: DeskApi, width: int = 1280, height: int = 800
) -> Customer:
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.add_init_script("window.COBROWSE_CONNECT_TIMEOUT_MS = 1000;")
    url = str(server.make_url("/demo"))
    await page.goto(url)
    await expect(page.get_by_role("button", name="Get help")).to_be_visible()
    return Customer(page, api, url, errors)


async def get_help_in_real_mode(
    browser: Browser, server: AiohttpServer, cdn: Callable[[Route], Awaitable[None]]
) -> Page:
    """A page whose /api/config names Zoom's CDN (served by ``cdn``), after a click on "Get help"."""
    context = await browser.new_context()
    await context.route("https://cdn.test/**", cdn)
    page = await context.new_page()
    await page.goto(str(server.make_url("/demo")))
    await page.get_by_role("button", name="Get help").click()
    await expect(page.locator("#pin")).to_have_text(re.compile(r"^\d{6}$"))
    return page


@pytest.fixture(name="api")
def _api() -> DeskApi:
    return DeskApi()


@pytest.fixture(name="server")
async def _server(aiohttp_server: AiohttpServer, api: DeskApi) -> AiohttpServer:
    return await aiohttp_server(desk_api_app(api))


@pytest.fixture(name="customer")
async def _customer(browser: Browser, server: AiohttpServer, api: DeskApi) -> AsyncIterator[Customer]:
    customer = await open_customer(browser, server, api)
    yield customer
    await customer.page.context.close()


async def test_each_click_sends_its_own_idempotency_key_and_a_retry_reuses_it(customer: Customer) -> None:
    customer.api.fail_starts = 1  # the first answer is a 503: the page tries again with the same key
    await customer.get_help()
    first, retry = customer.api.start_keys
    assert first and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", first)
    assert retry == first

    await customer.page.get_by_role("button", name="Cancel request").click()
    await customer.page.get_by_role("button", name="Get help again").click()
    await customer.get_help()
    assert len(customer.api.start_keys) == 3 and customer.api.start_keys[2] not in (None, first)
    assert customer.errors == []


async def test_cancel_keeps_the_beacon_until_the_sdk_reports_session_ended(customer: Customer) -> None:
    await customer.get_help()
    await customer.page.get_by_role("button", name="Cancel request").click()
    await expect(customer.page.locator('#help [data-view="ended"]')).to_contain_text("cancelled")
    assert customer.api.cancels == ["sess-1"]
    # The simulated SDK reports session_ended 150 ms after end(): the beacon was still there to forward it.
    await customer.api.beacons.wait_for(lambda r: "session_ended" in r.names())
    assert customer.errors == []


async def test_help_asked_again_at_once_is_not_ended_by_the_last_sessions_late_session_ended(
    customer: Customer,
) -> None:
    """The SDK reports session_ended 150 ms after end(): a customer quicker than that must not lose the new request."""
    await customer.get_help()
    await customer.page.get_by_role("button", name="Cancel request").click()
    await customer.page.get_by_role("button", name="Get help again").click()
    await customer.get_help()

    def events_of(session_id: str) -> list[str]:
        return [e["name"] for b in customer.api.beacons.batches if b["session_id"] == session_id for e in b["events"]]

    await customer.api.beacons.wait_for(lambda r: "session_started" in events_of("sess-2"))
    assert "session_ended" in events_of("sess-1")
    assert "session_ended" not in events_of("sess-2")
    await expect(customer.page.locator('#help [data-view="waiting"]')).to_be_visible()
    assert customer.errors == []


async def test_help_asked_again_starts_though_the_sdk_never_reports_the_last_end(
    browser: Browser, server: AiohttpServer, api: DeskApi
) -> None:
    """The wait for the last session's session_ended is bounded (3 s): a silent SDK does not block the next request."""
    customer = await open_customer(browser, server, api)
    await customer.page.route("**/static/zoom-sim.js", _silence_end)
    await customer.get_help()
    await customer.page.get_by_role("button", name="Cancel request").click()
    await customer.page.get_by_role("button", name="Get help again").click()
    await customer.page.get_by_role("button", name="Get help").click()
    await expect(customer.page.locator('#help [data-view="waiting"]')).to_be_visible(timeout=10_000)
    assert len(api.start_keys) == 2
    assert customer.errors == []
    await customer.page.context.close()


async def test_the_agent_name_comes_from_the_request_api(browser: Browser, server: AiohttpServer, api: DeskApi) -> None:
    """Real Zoom mode: the SDK's agent_joined carries no name; `agent_name` of the request API fills it in."""
    api.zoom = {"simulated": False, "host": "cdn.test", "sdk_key": "KEY"}
    page = await get_help_in_real_mode(browser, server, _serve_simulated_sdk)

    await page.evaluate("() => window.ZoomCobrowseSDK.simulation.agentJoined({ userId: 'zoom-user-1' })")
    await expect(page.locator(".joined")).to_have_text("A support agent joined")
    api.status = {"state": "claimed", "position": None, "estimated_wait_s": None, "no_agents": False,
                  "agent_name": "Ana Souza"}  # fmt: skip
    await expect(page.locator(".joined")).to_have_text("Ana Souza joined", timeout=10_000)
    await page.context.close()


async def test_no_wait_estimate_nor_stale_note_when_agents_come_and_go(customer: Customer) -> None:
    customer.api.status = {"state": "queued", "position": 1, "estimated_wait_s": None, "no_agents": True}
    await customer.get_help()
    note = customer.page.locator("#queue-note")
    await expect(note).to_contain_text("No agent is serving this line", timeout=10_000)
    await expect(customer.page.locator("#queue-position")).to_have_text("#1")
    await expect(customer.page.get_by_text("Estimated wait")).to_be_hidden()

    customer.api.status = {"state": "queued", "position": 1, "estimated_wait_s": 150, "no_agents": False}
    await expect(note).to_be_hidden(timeout=10_000)
    await expect(customer.page.locator("#queue-wait")).to_have_text("about 3 minutes")
    await expect(customer.page.get_by_text("Estimated wait")).to_be_visible()
    assert customer.errors == []


async def test_on_a_phone_the_help_entry_and_the_session_status_are_on_screen(
    browser: Browser, server: AiohttpServer, api: DeskApi
) -> None:
    customer = await open_customer(browser, server, api, 390, 844)
    page = customer.page

    async def on_screen(selector: str) -> bool:
        box = await page.locator(selector).bounding_box()
        return (
            box is not None
            and box["y"] >= 0
            and box["y"] + box["height"] <= 844
            and box["x"] >= 0
            and (box["x"] + box["width"] <= 390)
        )

    assert await on_screen("#get-help")
    await page.locator("#profile").scroll_into_view_if_needed()  # wherever the customer is on the page
    assert await page.evaluate("() => window.scrollY") > 0
    assert await on_screen("#get-help")

    await customer.get_help()
    await expect(page.locator("#queue-position")).to_have_text("#1", timeout=10_000)
    assert await on_screen("#pin") and await on_screen("#queue-position")
    await page.evaluate("() => window.scrollTo(0, 0)")
    assert await on_screen("#pin") and await on_screen("#queue-position")
    assert customer.errors == []
    await page.context.close()


async def test_the_support_pin_is_kept_and_a_silent_join_is_resumed_by_agent_joined(
    browser: Browser, server: AiohttpServer, api: DeskApi
) -> None:
    customer = await open_customer(browser, server, api)
    await customer.page.route("**/static/zoom-sim.js", _silence_join)
    pin = await customer.get_help()
    saved = await customer.page.evaluate("() => JSON.parse(sessionStorage.getItem('cobrowse-demo'))")
    assert saved["pin"] == pin

    await customer.page.add_init_script("window.JOIN_EMITS = 'agent_joined';")
    await customer.page.reload()
    await expect(customer.page.locator('#help [data-view="active"]')).to_be_visible()
    await expect(customer.page.locator("#pin-active")).to_have_text(pin)
    assert customer.errors == []
    await customer.page.context.close()


async def test_a_reload_whose_join_never_answers_does_not_hang(
    browser: Browser, server: AiohttpServer, api: DeskApi
) -> None:
    customer = await open_customer(browser, server, api)
    await customer.page.route("**/static/zoom-sim.js", _silence_join)
    await customer.get_help()
    await customer.page.reload()  # JOIN_EMITS unset: nothing at all comes back
    await expect(customer.page.locator('#help [data-view="ended"]')).to_contain_text("could not be resumed")
    await customer.page.get_by_role("button", name="Get help again").click()
    await expect(customer.page.get_by_role("button", name="Get help")).to_be_visible()
    assert customer.errors == []
    await customer.page.context.close()


@pytest.mark.parametrize(
    ("version", "path"), [(None, "/static/resource/sdk/KEY/js"), ("3.10.x", "/static/resource/sdk/KEY/js/3.10.x")]
)
async def test_zoom_sdk_version_pins_the_cdn_url(
    browser: Browser, server: AiohttpServer, api: DeskApi, version: str | None, path: str
) -> None:
    api.zoom = {"simulated": False, "host": "cdn.test", "sdk_key": "KEY"} | (
        {"sdk_version": version} if version else {}
    )
    loaded: list[str] = []

    async def cdn(route: Route) -> None:
        loaded.append(route.request.url)
        await _serve_simulated_sdk(route)

    page = await get_help_in_real_mode(browser, server, cdn)
    assert loaded == [f"https://cdn.test{path}"]
    await page.context.close()


async def _serve_simulated_sdk(route: Route) -> None:
    """Plays Zoom's CDN build: the stand-in SDK, not saying it is one (nothing joins unless the test says so)."""
    body = (TOKEN_STATIC / "zoom-sim.js").read_text() + "\nwindow.ZoomCobrowseSDK.simulated = false;\n"
    await route.fulfill(body=body, content_type="application/javascript")


async def _silence_end(route: Route) -> None:
    body = (TOKEN_STATIC / "zoom-sim.js").read_text() + SILENT_END
    await route.fulfill(body=body, content_type="application/javascript")


async def _silence_join(route: Route) -> None:
    body = (TOKEN_STATIC / "zoom-sim.js").read_text() + SILENT_JOIN
    await route.fulfill(body=body, content_type="application/javascript")

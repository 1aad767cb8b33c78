"""From the page: the SDK's ``pincode_updated`` on the demo page to the offer on an agent's socket.

The whole desk runs (token service with the simulated SDK, registry, notification service); headless Chromium
(Debian's, as in ``tests/browser``) opens the customer demo page (``/demo``) in ``TABS`` tabs, each loading the
real ``beacon.js`` from the registry. In each tab one customer after another clicks "Get help", waits for the
offer, cancels the request and clicks "Get help again" (the same page, the same SDK object, a new beacon per
request) until ``CUSTOMERS`` customers have asked. An init script stamps the moment the SDK emits
``pincode_updated`` (its listener is the first on the session); the clock stops when the offer for that session
reaches an agent's WebSocket in this process. Both sides read the same wall clock.

The tabs are opened before the clock runs: a browser starting a renderer process per customer would measure
Chromium's start-up on the 2 cores it shares here with the services, not the desk. Their "waiting" spinner is
still (``prefers-reduced-motion``) for the same reason: a real customer's animation runs on their own machine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import time

import aiohttp
import nats
from playwright.async_api import Browser, Page
from redis.asyncio import Redis

from shared.accounts import AccountStore
from tests.browser.chromium import launch_chromium

from .desk import close_agents, open_agents, percentile
from .harness import BenchEnv, Result, at_most

CUSTOMERS = 200
# One customer at a time: on these 2 cores a second tab's flow (start, cancel, Playwright's own commands) competes
# with the services for CPU; the desk under load is the ``latency`` suite's. BENCH_PAGE_TABS=2 runs two at once.
TABS = int(os.environ.get("BENCH_PAGE_TABS", "1"))
CAPACITY = 50
TARGET_P99_MS = 50.0
SECRET = {"SESSION_TOKEN_SECRET": "bench-session-secret-0123456789"}

# The first listener on the SDK session: it runs before the page's and the beacon's own.
STAMP_PIN = """
(() => {
  let sdk;
  Object.defineProperty(window, "ZoomCobrowseSDK", {
    configurable: true,
    get() { return sdk; },
    set(value) {
      sdk = value;
      const init = value.init.bind(value);
      value.init = (settings, callback) => init(settings, (result) => {
        if (result && result.session) {
          result.session.on("pincode_updated", () => {
            if (window.__pinSeen) window.__pinSeen(performance.timeOrigin + performance.now());
          });
        }
        callback(result);
      });
    },
  });
})();
"""


class Offers:
    """When each session's first offer reached an agent's socket (epoch s), awaitable per session."""

    def __init__(self) -> None:
        self._arrived: dict[str, asyncio.Future[float]] = {}

    def _future(self, session_id: str) -> asyncio.Future[float]:
        return self._arrived.setdefault(session_id, asyncio.get_running_loop().create_future())

    def record(self, session_id: str) -> None:
        future = self._future(session_id)
        if not future.done():
            future.set_result(time.time())

    async def arrival(self, session_id: str) -> float:
        return await self._future(session_id)


class Tab:
    """One customer demo tab, opened once; each ``ask`` is one customer's request for help."""

    def __init__(self, page: Page) -> None:
        self.page = page

    @classmethod
    async def open(cls, browser: Browser, demo_url: str) -> Tab:
        context = await browser.new_context(reduced_motion="reduce")
        page = await context.new_page()
        await page.add_init_script(STAMP_PIN)
        await page.goto(demo_url)
        await page.wait_for_function("() => document.body.dataset.view === 'idle'")
        return cls(page)

    async def ask(self, offered: Offers) -> tuple[str, float]:
        """Get help, wait for the offer, cancel; returns the session id and when the SDK emitted its PIN (epoch s)."""
        page = self.page
        # A promise, not a polled predicate: polling on animation frames would keep the tabs rendering.
        await page.evaluate("() => { window.__pinAt = new Promise((resolve) => { window.__pinSeen = resolve; }); }")
        await page.click("#get-help")
        pin_at = await page.evaluate("() => window.__pinAt")
        saved = await page.evaluate("() => sessionStorage.getItem('cobrowse-demo')")
        session_id = str(json.loads(saved)["session_id"])
        await asyncio.wait_for(offered.arrival(session_id), timeout=30)
        await page.click("#cancel")
        await page.wait_for_function("() => document.body.dataset.view === 'ended'")
        await page.click("#again")
        return session_id, float(pin_at) / 1000

    async def close(self) -> None:
        await self.page.context.close()


async def run(env: BenchEnv) -> list[Result]:
    customers = CUSTOMERS // 4 if env.quick else CUSTOMERS
    notify = await env.start_service("notification_service", {**SECRET, "NOTIFY_OFFER_TIMEOUT_S": "120"})
    registry = await env.start_service("session_registry", SECRET)
    urls = {"PUBLIC_REGISTRY_URL": registry, "PUBLIC_NOTIFY_URL": notify}
    limits = {"TOKEN_STARTS_PER_WINDOW": str(10**9), "TOKEN_CUSTOMER_TOKENS_PER_WINDOW": str(10**9)}
    token = await env.start_service("token_service", {**SECRET, **urls, **limits})
    queue = f"page{time.monotonic_ns()}"
    demo_url = f"{token}/demo?queue={queue}"
    redis = Redis.from_url(env.redis_url, decode_responses=True)
    nc = await nats.connect(env.nats_url)
    emitted: dict[str, float] = {}
    offers = Offers()
    try:
        async with aiohttp.ClientSession() as http:
            ws_base = notify.replace("http://", "ws://")
            sockets = await open_agents(http, ws_base, AccountStore(redis), queue, 1, CAPACITY)

            async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
                async for msg in ws:
                    frame = json.loads(msg.data)
                    if frame["type"] == "offer":
                        offers.record(frame["session_id"])

            readers = [asyncio.create_task(reader(ws)) for ws in sockets]
            async with launch_chromium() as browser:
                tabs = [await Tab.open(browser, demo_url) for _ in range(TABS)]
                for tab in tabs:
                    await tab.ask(offers)  # warm-up: each tab's SDK object, the services' first requests
                turns = itertools.count()

                async def customers_of(tab: Tab) -> None:
                    while next(turns) < customers:
                        session_id, pin_at = await tab.ask(offers)
                        emitted[session_id] = pin_at

                await asyncio.gather(*(customers_of(tab) for tab in tabs))
                for tab in tabs:
                    await tab.close()
            for task in readers:
                task.cancel()
            await close_agents(nc, sockets)
    finally:
        await nc.drain()
        await redis.aclose()
    latencies = [(await offers.arrival(s) - t) * 1000 for s, t in emitted.items()]
    return [
        Result("customers measured", len(latencies), f"of {customers}"),
        Result("pincode_updated -> offer: p50", statistics.median(latencies), "ms"),
        at_most("pincode_updated -> offer: p99", percentile(latencies, 99), TARGET_P99_MS, unit="ms"),
    ]

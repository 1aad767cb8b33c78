"""Steps the end-to-end tests share: sign in, ask for help, open a console or a dashboard (awaited on the page)."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from playwright.async_api import Locator, Page, expect

from devstack.simulator import Urls
from devstack.stack import Stack
from shared.accounts import Role

from .conftest import Pages

STEP_MS = 15_000
# The desk on show in the agent console (one iframe per claimed session; the others are hidden).
DESK = "#desks iframe:not([hidden])"


def registry_session(stack: Stack, api_key: str, session_id: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{stack.urls['registry']}/sessions/{session_id}", headers={"Authorization": f"Bearer {api_key}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body: dict[str, Any] = json.load(response)
    return body


async def sign_in(page: Page, api_key: str) -> None:
    await page.get_by_label("API key").fill(api_key)
    await page.get_by_role("button", name="Sign in").click()


async def get_help(page: Page, name: str) -> tuple[str, str]:
    """Click "Get help" on the customer demo; returns the session id and the Support PIN shown."""
    await page.get_by_label("Your name (optional)").fill(name)
    await page.get_by_role("button", name="Get help").click()
    pin = page.locator("#pin")
    await expect(pin).to_have_text(re.compile(r"^\d{6}$"), timeout=STEP_MS)
    session_id = await page.evaluate("() => JSON.parse(sessionStorage.getItem('cobrowse-demo')).session_id")
    return session_id, await pin.inner_text()


async def open_dashboard(stack: Stack, pages: Pages, width: int = 1280, height: int = 800) -> Page:
    """A supervisor's dashboard, signed in and following the live stream."""
    page = await pages.open(f"{stack.urls['notification']}/dashboard", "dashboard", width, height)
    await sign_in(page, await stack.create_account("Kim", Role.SUPERVISOR))
    await expect(page.locator("#stream-state")).to_have_text("live", timeout=STEP_MS)
    return page


async def open_agent(
    stack: Stack, pages: Pages, name: str, api_key: str, queues: str = "support", capacity: int = 1
) -> Page:
    """An agent's console, signed in and available for ``queues``."""
    page = await pages.open(f"{stack.urls['notification']}/agent", f"agent {name}")
    await sign_in(page, api_key)
    await expect(page.locator("#conn")).to_have_text("connected", timeout=STEP_MS)
    await page.get_by_label("Queues").fill(queues)
    await page.get_by_label("Capacity").fill(str(capacity))
    await page.get_by_text("Available", exact=True).click()
    await expect(page.locator("#notice")).to_have_text("You are available.", timeout=STEP_MS)
    return page


def service_urls(stack: Stack) -> Urls:
    return Urls(stack.urls["token"], stack.urls["registry"], stack.urls["notification"])


def feed_item(page: Page, event_type: str) -> Any:
    return page.locator(f'#feed li[data-type="{event_type}"]').first


async def waiting_customer(stack: Stack, pages: Pages, queue: str, name: str) -> tuple[Page, Locator]:
    """A customer who asked for help in ``queue``, and their session's row on a supervisor's dashboard (waiting)."""
    dashboard = await open_dashboard(stack, pages)
    customer = await pages.open(f"{stack.urls['token']}/demo?queue={queue}", "customer")
    session_id, _ = await get_help(customer, name)
    row = dashboard.locator(f'#sessions tr[data-session="{session_id}"]')
    await expect(row).to_have_attribute("data-state", "waiting", timeout=STEP_MS)
    return customer, row

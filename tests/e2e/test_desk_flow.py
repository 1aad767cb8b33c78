"""The whole desk in headless Chromium: a customer asks for help, an agent claims, a supervisor watches.

Three browser contexts are three people on three machines: nothing passes between them except through the
services. Every step is awaited on the page (Playwright's expect / wait_for_selector), never slept on.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from playwright.async_api import Page, expect

from devstack.simulator import Customer
from devstack.stack import Stack
from shared.accounts import Role

from .conftest import SCREENSHOTS, Pages
from .flows import (
    DESK,
    STEP_MS,
    feed_item,
    get_help,
    open_agent,
    open_dashboard,
    registry_session,
    service_urls,
    waiting_customer,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


async def unlabelled_controls(page: Page) -> list[str]:
    """Visible form controls and buttons without an accessible name (a label, text or aria attribute)."""
    found: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea, button")]
          .filter((el) => el.offsetParent !== null)
          .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                          && !el.getAttribute("aria-labelledby") && !el.textContent.trim())
          .map((el) => el.outerHTML.slice(0, 80))"""
    )
    return found


async def test_customer_agent_and_supervisor_through_a_whole_session(stack: Stack, pages: Pages) -> None:
    dashboard = await open_dashboard(stack, pages, 1400, 1000)
    agent_key = await stack.create_account("Alex", Role.AGENT)
    agent = await open_agent(stack, pages, "Alex", agent_key)
    await expect(dashboard.locator("#agents tr", has_text="Alex")).to_contain_text("available", timeout=STEP_MS)

    # The customer gets exactly one PIN, the one the SDK reported, and the registry holds the same one.
    customer = await pages.open(f"{stack.urls['token']}/demo", "customer")
    await expect(customer.locator("#sim-banner")).to_be_visible()
    session_id, pin = await get_help(customer, "Jordan")
    await expect(customer.get_by_text("Your Support PIN")).to_be_visible()
    assert await customer.locator(".pin").count() == 1

    row = dashboard.locator(f'#sessions tr[data-session="{session_id}"]')
    await expect(feed_item(dashboard, "queue.queued")).to_be_visible(timeout=STEP_MS)
    supervisor_key = await stack.create_account("Sam", Role.SUPERVISOR)
    assert registry_session(stack, supervisor_key, session_id)["session"]["pin"] == pin
    assert registry_session(stack, agent_key, session_id)["session"]["pin"] is None  # PINs are need-to-know
    await expect(feed_item(dashboard, "queue.offered")).to_be_visible(timeout=STEP_MS)

    # The agent console receives the request live, with its wait time, and claims it.
    offer = agent.locator(f'#requests li[data-session="{session_id}"]')
    await expect(offer).to_contain_text("Jordan", timeout=STEP_MS)
    await expect(offer.locator(".waited")).to_have_text(re.compile(r"^\d+s$"))
    await expect(customer.locator("#queue-position")).to_have_text("#1", timeout=STEP_MS)
    await customer.screenshot(path=str(SCREENSHOTS / "customer.png"))
    for page in (customer, agent, dashboard):
        assert await unlabelled_controls(page) == []

    await offer.get_by_role("button", name="Claim request from Jordan").click()
    desk = agent.locator(DESK)
    await expect(desk).to_be_visible(timeout=STEP_MS)
    assert f"pin={pin}" in (await desk.get_attribute("src") or "")
    await expect(agent.frame_locator(DESK).locator("#pin")).to_have_text(pin, timeout=STEP_MS)
    await expect(agent.locator("#desk-info")).to_contain_text(f"PIN {pin}")
    await expect(feed_item(dashboard, "queue.claimed")).to_be_visible(timeout=STEP_MS)

    # The customer page sees the agent join; the registry and the dashboard follow.
    await expect(customer.locator('#help [data-view="active"]')).to_be_visible(timeout=STEP_MS)
    await expect(customer.locator(".joined")).to_contain_text("joined")
    await expect(feed_item(dashboard, "session.agent_joined")).to_be_visible(timeout=STEP_MS)
    await expect(row).to_have_attribute("data-state", "active", timeout=STEP_MS)
    await expect(row).to_contain_text("Alex")
    await agent.screenshot(path=str(SCREENSHOTS / "agent.png"))

    # A reload within the reconnect window keeps the session: same PIN, agent still there.
    await customer.reload()
    await expect(customer.locator('#help [data-view="active"]')).to_be_visible(timeout=STEP_MS)
    await expect(customer.locator("#pin-active")).to_have_text(pin)
    await expect(feed_item(dashboard, "session.resumed")).to_be_visible(timeout=STEP_MS)
    assert registry_session(stack, agent_key, session_id)["session"]["state"] == "active"

    # The customer ends the session; everyone sees it.
    await customer.get_by_role("button", name="End session").click()
    await expect(customer.locator('#help [data-view="ended"]')).to_be_visible(timeout=STEP_MS)
    await expect(feed_item(dashboard, "session.ended")).to_be_visible(timeout=STEP_MS)
    await expect(row).to_have_attribute("data-state", "ended", timeout=STEP_MS)
    assert registry_session(stack, agent_key, session_id)["session"]["state"] == "ended"
    await expect(dashboard.locator("#kpi-claimed")).not_to_have_text("0")

    # Customers of the simulator (public APIs only) fill the billing queue, which no agent serves.
    async with aiohttp.ClientSession() as http:
        waiting = [await Customer.start(http, service_urls(stack), "billing", n) for n in ("Ada", "Bo", "Chen")]
        for n, sim in enumerate(waiting):
            await sim.send("pincode_updated", {"pinCode": f"70000{n}"})
        await expect(dashboard.locator('#queues tr[data-queue="billing"] td').first).to_have_text("3", timeout=STEP_MS)
        await dashboard.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
        for sim in waiting:
            await sim.send("session_ended")

    assert pages.errors == []


async def test_closing_the_customer_page_flushes_its_beacons(stack: Stack, pages: Pages) -> None:
    customer, row = await waiting_customer(stack, pages, "closing", "Robin")

    await customer.close(run_before_unload=True)
    # The page_hidden beacon left with the page: the registry starts the reconnect window.
    await expect(row).to_have_attribute("data-state", "reconnecting", timeout=STEP_MS)
    assert pages.errors == []


async def test_agent_console_shows_an_offer_that_timed_out(stack: Stack, pages: Pages) -> None:
    agent = await open_agent(stack, pages, "Sam", await stack.create_account("Sam", Role.AGENT), "timeouts")
    customer = await pages.open(f"{stack.urls['token']}/demo?queue=timeouts", "customer")
    session_id, _ = await get_help(customer, "Casey")
    await expect(agent.locator(f'#requests li[data-session="{session_id}"]')).to_be_visible(timeout=STEP_MS)

    # Nobody answers within NOTIFY_OFFER_TIMEOUT_S: the offer goes away and the agent is set away.
    await expect(agent.locator("#history")).to_contain_text("offer timed out", timeout=STEP_MS)
    await expect(agent.locator("#requests li")).to_have_count(0)
    await expect(agent.locator("#notice")).to_contain_text("set to Away")
    await expect(agent.locator("#st-away")).to_be_checked()

    await customer.get_by_role("button", name="Cancel request").click()
    await expect(customer.locator('#help [data-view="ended"]')).to_contain_text("cancelled", timeout=STEP_MS)
    assert pages.errors == []


async def test_a_broadcast_request_claimed_by_one_agent_shows_as_taken_for_the_other(
    stack: Stack, pages: Pages
) -> None:
    ana = await open_agent(stack, pages, "Ana", await stack.create_account("Ana", Role.AGENT), "rush")
    ben = await open_agent(stack, pages, "Ben", await stack.create_account("Ben", Role.AGENT), "rush")
    customer = await pages.open(f"{stack.urls['token']}/demo?queue=rush", "customer")
    session_id, _ = await get_help(customer, "Eve")

    offer = f'#requests li[data-session="{session_id}"]'
    await expect(ana.locator(offer)).to_be_visible(timeout=STEP_MS)
    await expect(ben.locator(offer)).to_be_visible(timeout=STEP_MS)
    await ana.locator(offer).get_by_role("button", name="Claim request from Eve").click()

    await expect(ana.locator(DESK)).to_be_visible(timeout=STEP_MS)
    await expect(ben.locator(offer)).to_have_count(0, timeout=STEP_MS)
    await expect(ben.locator("#history")).to_contain_text("Eve: taken by another agent")

    await expect(customer.locator('#help [data-view="active"]')).to_be_visible(timeout=STEP_MS)
    await customer.get_by_role("button", name="End session").click()
    await expect(customer.locator('#help [data-view="ended"]')).to_be_visible(timeout=STEP_MS)
    assert pages.errors == []


async def test_dashboard_resumes_after_a_notification_restart_without_missing_events(
    stack: Stack, pages: Pages
) -> None:
    dashboard = await open_dashboard(stack, pages)
    stack.services["notification"].process.terminate()
    await asyncio.to_thread(stack.services["notification"].process.wait)
    await expect(dashboard.locator("#stream-state")).to_have_text("reconnecting…", timeout=STEP_MS)

    # While the dashboard's server is down, a customer starts: the registry publishes to JetStream anyway.
    async with aiohttp.ClientSession() as http:
        sim = await Customer.start(http, service_urls(stack), "restart", "Dana")
        await sim.send("pincode_updated", {"pinCode": "424242"})

        await asyncio.to_thread(stack.restart, "notification")
        await expect(dashboard.locator("#stream-state")).to_have_text("live · resumed", timeout=STEP_MS)
        # Replayed from where the page left off: the events of the outage, then the live tail.
        row = dashboard.locator(f'#sessions tr[data-session="{sim.session_id}"]')
        await expect(row).to_have_attribute("data-state", "waiting", timeout=STEP_MS)
        await expect(feed_item(dashboard, "session.created")).to_contain_text("Dana")
        await sim.send("session_ended")
        await expect(row).to_have_attribute("data-state", "ended", timeout=STEP_MS)

    assert await dashboard.locator('#feed li[data-type="session.created"]', has_text="Dana").count() == 1
    # The page only logged the refused connections of the outage; nothing was thrown.
    assert [e for e in pages.errors if "uncaught" in e] == []


async def test_cancelling_a_request_ends_its_session_in_the_registry(stack: Stack, pages: Pages) -> None:
    """The page keeps its beacon until the SDK's session_ended, so the registry learns it even from the page alone."""
    customer, row = await waiting_customer(stack, pages, "cancelling", "Quinn")

    await customer.get_by_role("button", name="Cancel request").click()
    await expect(customer.locator('#help [data-view="ended"]')).to_contain_text("cancelled", timeout=STEP_MS)
    await expect(row).to_have_attribute("data-state", "ended", timeout=STEP_MS)
    assert pages.errors == []

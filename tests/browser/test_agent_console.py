"""The agent console's desks against a scripted agent socket: the frames of contracts 4 and 5, sent on cue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, Page, expect
from pytest_aiohttp import AiohttpServer

from .agent_socket import AgentSocket, console_app

pytestmark = pytest.mark.browser

DESK = "#desks iframe:not([hidden])"


@dataclass
class Console:
    page: Page
    socket: AgentSocket
    errors: list[str]

    async def claim(self, session_id: str, pin: str, who: str) -> None:
        """The server offers a request, the agent clicks Claim, the server answers `claimed`."""
        await self.socket.send(
            {
                "type": "offer",
                "session_id": session_id,
                "queue": "support",
                "customer_name": who,
                "waited_s": 3,
                "mode": "offer",
                "expires_in_s": 30,
            }
        )
        before = sum(f["type"] == "claim" for f in self.socket.received)
        await self.page.get_by_role("button", name=f"Claim request from {who}").click()
        claims = await self.socket.wait_for("claim", before + 1)
        assert claims[-1] == {"type": "claim", "session_id": session_id}
        await self.socket.send(self.socket.claimed(session_id, pin))
        await expect(self.page.locator(DESK)).to_have_attribute("data-session", session_id)


async def open_console(browser: Browser, server: AiohttpServer, socket: AgentSocket) -> Console:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(str(server.make_url("/agent")))
    await page.get_by_label("API key").fill("cbk_test")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#conn")).to_have_text("connected")
    return Console(page, socket, errors)


@pytest.fixture(name="console")
async def _console(browser: Browser, aiohttp_server: AiohttpServer) -> AsyncIterator[Console]:
    socket = AgentSocket()
    console = await open_console(browser, await aiohttp_server(console_app(socket)), socket)
    yield console
    await console.page.close()


async def test_session_ended_closes_that_desk_with_a_clear_message(console: Console) -> None:
    await console.claim("s-1", "111111", "Ada")
    await console.claim("s-2", "222222", "Bo")

    await console.socket.send({"type": "session_ended", "session_id": "s-2", "reason": "cancelled"})
    message = console.page.locator("#desk-message")
    await expect(message).to_have_text("The session with Bo ended: cancelled by the customer.")
    await expect(console.page.locator("#notice")).to_have_text("The session with Bo ended: cancelled by the customer.")
    await expect(console.page.locator('#desks iframe[data-session="s-2"]')).to_have_count(0)
    await expect(console.page.locator("#session-count")).to_have_text("1")

    # The other desk is untouched; the ended one is listed until dismissed.
    await console.page.get_by_role("button", name="Ada · PIN 111111").click()
    await expect(console.page.locator(DESK)).to_have_attribute("data-session", "s-1")
    await expect(message).to_be_hidden()
    await console.page.get_by_role("button", name="Dismiss session with Bo").click()
    await expect(console.page.locator("#my-sessions li")).to_have_count(1)
    assert console.errors == []


async def test_release_asks_the_server_and_closes_the_desk_on_its_answer(console: Console) -> None:
    await console.claim("s-1", "111111", "Ada")
    await console.page.get_by_role("button", name="Release session with Ada").click()
    assert (await console.socket.wait_for("release"))[-1] == {"type": "release", "session_id": "s-1"}
    await expect(console.page.locator("#my-sessions li")).to_have_count(1)  # not before the server said so

    await console.socket.send({"type": "released", "session_id": "s-1"})
    await expect(console.page.locator("#my-sessions li")).to_have_count(0)
    await expect(console.page.locator("#desk-empty")).to_have_text("Claim a request to open the desk for its PIN.")
    assert console.errors == []


async def test_a_reload_claims_every_listed_session_again_and_keeps_names_and_the_shown_desk(
    browser: Browser, aiohttp_server: AiohttpServer
) -> None:
    socket = AgentSocket()
    server = await aiohttp_server(console_app(socket))
    console = await open_console(browser, server, socket)
    await console.claim("s-1", "111111", "Ada")
    await console.claim("s-2", "222222", "Bo")
    await console.page.get_by_role("button", name="Ada · PIN 111111").click()

    socket.sessions = [
        {"session_id": "s-1", "queue": "support", "pin": "111111"},
        {"session_id": "s-2", "queue": "support", "pin": "222222"},
    ]
    await console.page.reload()
    claims = await socket.wait_for("claim", 4)
    assert sorted(f["session_id"] for f in claims[2:]) == ["s-1", "s-2"]
    await socket.send(socket.claimed("s-2", "222222"))
    await socket.send(socket.claimed("s-1", "111111"))

    await expect(console.page.locator("#desks iframe")).to_have_count(2)
    await expect(console.page.locator(DESK)).to_have_attribute("data-session", "s-1")
    await expect(console.page.locator("#my-sessions")).to_contain_text("Ada · PIN 111111")
    await expect(console.page.locator("#my-sessions")).to_contain_text("Bo · PIN 222222")

    # Reconnected after s-2 ended unseen: a desk the server no longer lists is shown as ended, not left open.
    socket.sessions = socket.sessions[:1]
    assert socket.ws is not None
    await socket.ws.close()
    await expect(console.page.locator("#history")).to_contain_text(
        "The session with Bo ended: no longer yours.", timeout=10_000
    )
    await expect(console.page.locator('#desks iframe[data-session="s-1"]')).to_have_count(1)
    assert console.errors == []
    await console.page.close()

"""End-to-end fixtures: the whole system as real processes, and headless Chromium driving its pages."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page

from devstack.stack import Stack
from tests.browser.chromium import launch_chromium
from tests.conftest import TEST_SDK_KEY, TEST_SDK_SECRET

# `make screenshots` refreshes the README's pictures; other runs keep the work tree clean.
SCREENSHOTS = (
    Path(__file__).parents[2] / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "cobrowse-desk-screenshots"
)

STACK_ENV = {
    "ZOOM_SDK_KEY": TEST_SDK_KEY,
    "ZOOM_SDK_SECRET": TEST_SDK_SECRET,
    "ZOOM_SIMULATED": "true",
    "LOG_LEVEL": "INFO",
    "NOTIFY_OFFER_TIMEOUT_S": "3",
    "NOTIFY_QUEUE_MODES": '{"rush": "broadcast"}',
}


@pytest.fixture(scope="session", name="stack")
def _stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, NATS and the three services as processes, shared by the end-to-end tests (each uses its own queues)."""
    stack = Stack.start(tmp_path_factory.mktemp("e2e"), env=STACK_ENV)
    yield stack
    stack.stop()


@pytest.fixture(name="browser")
async def _browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as browser:
        yield browser


@dataclass
class Pages:
    """Opens pages in separate browser contexts (separate people) and keeps every console error they log."""

    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def open(self, url: str, name: str, width: int = 1280, height: int = 800) -> Page:
        context = await self.browser.new_context(viewport={"width": width, "height": height})
        self.contexts.append(context)
        page = await context.new_page()

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"{name}: {message.text}")

        def page_error(error: Error) -> None:
            self.errors.append(f"{name}: uncaught {error}")

        page.on("console", console)
        page.on("pageerror", page_error)
        await page.goto(url)
        return page


@pytest.fixture(name="pages")
async def _pages(browser: Browser) -> AsyncIterator[Pages]:
    pages = Pages(browser)
    yield pages
    for context in pages.contexts:
        await context.close()

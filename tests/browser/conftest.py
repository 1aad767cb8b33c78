from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from .chromium import launch_chromium


@pytest.fixture(name="browser")
async def _browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as browser:
        yield browser

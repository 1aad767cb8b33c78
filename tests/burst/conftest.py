"""The three services in this process on real sockets, sharing the test Redis and NATS, and a burst driver.

Every service runs with its production defaults for the resource bounds (Redis pool, connection caps) and limits
loose enough that a burst from one address tests the bounds, not the rate limiter.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer
from redis.asyncio import Redis

from notification_service.app import create_app as create_notification
from notification_service.settings import Settings as NotificationSettings
from session_registry.app import create_app as create_registry
from session_registry.settings import Settings as RegistrySettings
from shared.accounts import AccountStore, Role
from tests.conftest import TEST_SDK_KEY, TEST_SDK_SECRET
from token_service.app import create_app as create_token
from token_service.settings import Settings as TokenSettings

BURST = 2000
SESSION_SECRET = "burst-session-token-secret-0123456789"
LOOSE = 1_000_000


@dataclass
class Desk:
    token: str
    registry: str
    notification: str
    http: aiohttp.ClientSession
    redis: Redis

    async def account(self, role: Role = Role.AGENT, name: str = "agent") -> tuple[str, str]:
        account, api_key = await AccountStore(self.redis).create(name, role)
        return account.id, api_key

    async def start_customer(self, **body: Any) -> dict[str, Any]:
        async with self.http.post(f"{self.token}/api/customer/start", json=body) as response:
            assert response.status == 200, await response.text()
            return dict(await response.json())


Answer = tuple[int, dict[str, str]]


def acceptable(status: int, headers: dict[str, str]) -> bool:
    """The only answers a burst may get: success, rate limited, or unavailable *with* Retry-After."""
    return 200 <= status < 300 or status == 429 or (status == 503 and "Retry-After" in headers)


async def burst(n: int, send: Callable[[int], Awaitable[Answer]]) -> collections.Counter[int]:
    """Run ``send(i)`` for ``i < n`` all at once; the statuses, after asserting every answer is acceptable."""
    answers = await asyncio.gather(*(send(i) for i in range(n)))
    bad = [(status, headers) for status, headers in answers if not acceptable(status, headers)]
    statuses = collections.Counter(status for status, _ in answers)
    assert not bad, f"{len(bad)} unacceptable answers of {n}: {statuses}; first: {bad[0]}"
    assert statuses[200] + statuses[201] + statuses[202] + statuses[204] > 0, statuses
    return statuses


def answer(response: aiohttp.ClientResponse) -> Answer:
    return response.status, dict(response.headers)


@asynccontextmanager
async def running_desk(aiohttp_server: AiohttpServer, redis_url: str, nats_url: str) -> AsyncIterator[Desk]:
    """The three services on ``redis_url`` and ``nats_url``, with a client session without a connection limit."""
    common: dict[str, Any] = {"redis_url": redis_url, "nats_url": nats_url, "instance_id": uuid.uuid4().hex[:6]}
    registry = await aiohttp_server(
        create_registry(RegistrySettings(**common, SESSION_TOKEN_SECRET=SESSION_SECRET, timer_poll_interval_s=0.2))
    )
    notification = await aiohttp_server(
        create_notification(
            NotificationSettings(**common, session_token_secret=SESSION_SECRET, max_agent_sockets_per_account=BURST)
        )
    )
    limits = ("customer_tokens_per_window", "agent_tokens_per_window", "starts_per_window", "pin_failures_per_agent")
    sdk = {"ZOOM_SDK_KEY": TEST_SDK_KEY, "ZOOM_SDK_SECRET": TEST_SDK_SECRET}
    loose = dict.fromkeys((*limits, "pin_failures_per_ip"), LOOSE)
    token_settings = TokenSettings(_env_file=None, **common, **loose, **sdk)
    token = await aiohttp_server(create_token(token_settings))
    # No client-side connection limit: the burst reaches the servers at once.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            yield Desk(
                str(token.make_url("")).rstrip("/"),
                str(registry.make_url("")).rstrip("/"),
                str(notification.make_url("")).rstrip("/"),
                http,
                redis,
            )
        finally:
            await redis.aclose()


@pytest.fixture(name="desk")
async def _desk(aiohttp_server: AiohttpServer, redis_url: str, nats_url: str) -> AsyncIterator[Desk]:
    async with running_desk(aiohttp_server, redis_url, nats_url) as desk:
        yield desk

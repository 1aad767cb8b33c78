"""Idempotent customer start against the real session registry (real Redis and NATS, both services in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from session_registry.app import create_app as create_registry
from session_registry.keyspaces import Keyspaces
from session_registry.settings import Settings as RegistrySettings

from .conftest import MakeClient


@pytest.fixture(name="registry_service")
async def _registry_service(aiohttp_client: AiohttpClient, redis_url: str, nats_url: str) -> Any:
    settings = RegistrySettings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_url,
        nats_url=nats_url,
        SESSION_TOKEN_SECRET="test-session-token-secret-0123456789",
    )
    return await aiohttp_client(create_registry(settings))


Start = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(name="start")
async def _start(make_client: MakeClient, registry_service: Any) -> Start:
    client = await make_client(starts_per_window=1000)

    async def start(key: str) -> dict[str, Any]:
        response = await client.post(
            "/api/customer/start", json={"userName": "Carol"}, headers={"Idempotency-Key": key}
        )
        assert response.status == 200, await response.text()
        return dict(await response.json())

    return start


async def _sessions(redis: Redis) -> int:
    """Sessions the registry holds (its partitions' creation-time indexes, ``reg:{p<n>}:index``)."""
    keys = Keyspaces.build("reg:", partitions=16, pin_bucket_drop=2)
    return sum([int(await redis.zcard(key)) for key in keys.index_keys()])


async def test_a_retried_start_returns_the_same_session(start: Start, redis: Redis) -> None:
    first, retry = await start("click-1"), await start("click-1")
    assert retry["session_id"] == first["session_id"]
    assert retry["session_token"] == first["session_token"]
    other = await start("click-2")
    assert other["session_id"] != first["session_id"]
    assert await _sessions(redis) == 2


async def test_50_concurrent_starts_with_one_key_create_one_session(start: Start, redis: Redis) -> None:
    answers = await asyncio.gather(*(start("burst-key") for _ in range(50)))
    assert len({a["session_id"] for a in answers}) == 1
    assert len({a["session_token"] for a in answers}) == 1
    assert await _sessions(redis) == 1

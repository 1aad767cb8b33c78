"""Fixtures for the token service: settings, a client through the real factory, accounts, a stand-in registry."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import nats
import pytest
from nats.micro import add_service
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from shared.accounts import AccountStore, Role
from shared.errors import CobrowseError, Conflict, NotFound
from shared.messaging import (
    REGISTRY_CREATE_MANY,
    REGISTRY_RESOLVE_MANY,
    REGISTRY_SERVICE,
    CreatedSession,
    CreateSession,
    ResolvePin,
    SessionState,
    SessionView,
)
from shared.rpc import endpoint
from shared.rpc_many import Many, serve_many
from tests.conftest import TEST_SDK_KEY, TEST_SDK_SECRET
from token_service.app import create_app
from token_service.settings import Settings

MakeClient = Callable[..., Awaitable[Any]]


def decode(token: str) -> dict[str, Any]:
    """Verify and decode a token the way Zoom would: HS256 with the SDK secret, exp and iat required."""
    return jwt.decode(token, TEST_SDK_SECRET, algorithms=["HS256"], options={"require": ["exp", "iat"]})


@pytest.fixture(name="make_settings")
def _make_settings(redis_url: str, nats_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "nats_url": nats_url,
            "zoom_sdk_key": TEST_SDK_KEY,
            "zoom_sdk_secret": TEST_SDK_SECRET,
            "zoom_simulated": False,
            "cors_origins": ("http://shop.example",),
            "registry_timeout_s": 0.5,
            **overrides,
        }
        return Settings(_env_file=None, **values)  # a developer's .env must not change the tests

    return make


@pytest.fixture(name="make_client")
def _make_client(aiohttp_client: AiohttpClient, make_settings: Callable[..., Settings]) -> MakeClient:
    """``await make_client(**settings_overrides)``: a test client of the token service."""

    async def make(**overrides: Any) -> Any:
        return await aiohttp_client(create_app(make_settings(**overrides)))

    return make


@pytest.fixture(name="client")
async def _client(make_client: MakeClient) -> Any:
    return await make_client()


@pytest.fixture(name="accounts")
def _accounts(redis: Redis) -> AccountStore:
    return AccountStore(redis)


@pytest.fixture(name="agent_key")
async def _agent_key(accounts: AccountStore) -> str:
    _, key = await accounts.create("Ann Agent", Role.AGENT)
    return key


@dataclass
class FakeRegistry:
    """Stands in for the session registry on the test NATS: sessions by PIN, a record of create requests."""

    sessions: dict[str, SessionView] = field(default_factory=dict)
    created: list[CreateSession] = field(default_factory=list)
    batches: dict[str, list[int]] = field(default_factory=dict)
    """The number of calls in each ``*_many`` request, by endpoint (``create``, ``resolve``)."""
    resolved: list[ResolvePin] = field(default_factory=list)
    not_ready: set[str] = field(default_factory=set)
    full: set[str] = field(default_factory=set)
    create_error: CobrowseError | None = None
    taken_pins: set[str] = field(default_factory=set)

    def add_session(self, pin: str, session_id: str = "s-1") -> SessionView:
        now = time.time()
        view = SessionView(session_id=session_id, state=SessionState.WAITING, pin=pin, created_at=now, updated_at=now)
        self.sessions[pin] = view
        return view

    async def create(self, request: CreateSession) -> CreatedSession:
        if self.create_error is not None:
            raise self.create_error
        if request.custom_pin in self.taken_pins:
            raise Conflict("this PIN is in use by another live session", code="pin_taken")
        self.created.append(request)
        now = time.time()
        view = SessionView(
            session_id=f"s-{len(self.created)}",
            state=SessionState.CREATED,
            queue=request.queue,
            priority=request.priority,
            customer_name=request.customer_name,
            pin=request.custom_pin,
            created_at=now,
            updated_at=now,
        )
        return CreatedSession(session=view, beacon_token=f"v1.{view.session_id}.sig")

    async def resolve(self, request: ResolvePin) -> SessionView:
        self.resolved.append(request)
        if request.pin in self.not_ready:
            raise NotFound("the session has not confirmed this PIN yet", code="pin_not_ready")
        if request.pin in self.full:
            raise Conflict("the session has the most agents it can take", code="agent_limit")
        if request.pin not in self.sessions:
            raise NotFound("no live session with this PIN", code="pin_not_found")
        return self.sessions[request.pin]


@pytest.fixture(name="registry")
async def _registry(nc: nats.aio.client.Client) -> AsyncIterator[FakeRegistry]:
    fake = FakeRegistry()
    service = await add_service(nc, name=REGISTRY_SERVICE, version="0.0.0")

    def counted(name: str, handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Many[Any]], Awaitable[Any]]:
        many = serve_many(handler)

        async def handle(batch: Many[Any]) -> Any:
            fake.batches.setdefault(name, []).append(len(batch.items))
            return await many(batch)

        return handle

    for name, subject, handle in [
        ("create-many", REGISTRY_CREATE_MANY, endpoint(Many[CreateSession], counted("create", fake.create))),
        ("resolve-many", REGISTRY_RESOLVE_MANY, endpoint(Many[ResolvePin], counted("resolve", fake.resolve))),
    ]:
        await service.add_endpoint(name=name, subject=subject, handler=handle)
    yield fake
    await service.stop()

"""Registry fixtures: apps built by the real factory against the test Redis/NATS, a JetStream event collector."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from devstack.servers import ServerProcess, free_port, start_nats
from session_registry.app import create_app
from session_registry.keyspaces import Keyspaces
from session_registry.settings import Settings
from shared.messaging import (
    REGISTRY_CREATE,
    SESSION_EVENTS,
    CreatedSession,
    CreateSession,
    SessionEvent,
    ensure_streams,
)
from shared.rpc import call

SESSION_SECRET = "test-session-token-secret-0123456789"
WEBHOOK_SECRET = "test-zoom-webhook-secret"

# Durations long enough that no timer fires unless a test shortens it on purpose.
BASE: dict[str, Any] = {
    "SESSION_TOKEN_SECRET": SESSION_SECRET,
    "ZOOM_WEBHOOK_SECRET_TOKEN": WEBHOOK_SECRET,
    "timer_poll_interval_s": 0.05,
    "outbox_lease_s": 0.6,
    "outbox_retry_max_s": 0.2,
    "publish_timeout_s": 0.5,
    "no_pin_timeout_s": 60,
    "waiting_timeout_s": 60,
    "reconnect_window_s": 60,
    "agent_wait_timeout_s": 60,
    "heartbeat_timeout_s": 60,
}

MakeSettings = Callable[..., Settings]


class OwnNats:
    """A private nats-server (JetStream on disk) that a test can stop and start again on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.server: ServerProcess = start_nats(data_dir, self.port)
        self.url = self.server.url

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = start_nats(self.data_dir, self.port)


@pytest.fixture(name="own_nats")
def _own_nats(tmp_path: Path) -> Iterator[OwnNats]:
    # Requested before the registry, so it stops after the registry has shut down.
    server = OwnNats(tmp_path / "nats")
    yield server
    server.stop()


KEYS = Keyspaces.build("reg:", partitions=16, pin_bucket_drop=2)
"""The registry's keys with the default settings (tests read Redis with them)."""


def partition_key(session_id: str, name: str) -> str:
    """A key of the session's partition: ``timers``, ``index``, ``outbox``, ``lease``."""
    return KEYS.partition.key(KEYS.part(session_id), name)


def every_partition(name: str) -> list[str]:
    return [KEYS.partition.key(base, name) for base in KEYS.bases()]


@pytest.fixture(name="make_settings")
def _make_settings(redis_url: str, nats_url: str) -> MakeSettings:
    def make(**overrides: Any) -> Settings:
        values = {"redis_url": redis_url, "nats_url": nats_url, **BASE, **overrides}
        return Settings(**values)

    return make


@pytest.fixture(name="start_registry")
def _start_registry(aiohttp_client: AiohttpClient, make_settings: MakeSettings) -> Callable[..., Awaitable[TestClient]]:
    async def start(**overrides: Any) -> TestClient:
        return await aiohttp_client(create_app(make_settings(**overrides)))

    return start


@pytest.fixture(name="client")
async def _client(start_registry: Callable[..., Awaitable[TestClient]]) -> TestClient:
    return await start_registry()


class EventLog:
    """Every SessionEvent JetStream stores, awaitable by type and session."""

    def __init__(self) -> None:
        self.events: list[SessionEvent] = []
        self.raw: list[bytes] = []
        """Each message's body as the registry wrote it (for contract tests stricter than the shared model)."""
        self.msg_ids: list[str] = []
        self._changed = asyncio.Condition()

    async def add(self, msg: nats.aio.msg.Msg) -> None:
        async with self._changed:
            self.events.append(SessionEvent.model_validate_json(msg.data))
            self.raw.append(msg.data)
            self.msg_ids.append((msg.headers or {}).get("Nats-Msg-Id", ""))
            self._changed.notify_all()

    def of(self, session_id: str, type_: str | None = None) -> list[SessionEvent]:
        return [e for e in self.events if e.session.session_id == session_id and (type_ is None or e.type == type_)]

    def raw_of(self, session_id: str) -> list[bytes]:
        return [raw for raw, e in zip(self.raw, self.events, strict=True) if e.session.session_id == session_id]

    async def wait(self, session_id: str, type_: str, count: int = 1, within_s: float = 5.0) -> list[SessionEvent]:
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(lambda: len(self.of(session_id, type_)) >= count)
        return self.of(session_id, type_)


@pytest.fixture(name="events")
async def _events(nc: nats.aio.client.Client) -> AsyncIterator[EventLog]:
    log = EventLog()
    js = nc.jetstream()
    await ensure_streams(js)
    sub = await js.subscribe(SESSION_EVENTS, cb=log.add, ordered_consumer=True)
    yield log
    await sub.unsubscribe()


_seq = itertools.count(1)


def ev(
    name: str, payload: dict[str, Any] | None = None, *, seq: int | None = None, id: str | None = None
) -> dict[str, Any]:
    """A beacon event as beacon.js sends it."""
    n = next(_seq) if seq is None else seq
    return {
        "id": id or uuid.uuid4().hex,
        "name": name,
        "ts": int(time.time() * 1000),
        "seq": n,
        "payload": payload or {},
    }


class Session:
    def __init__(self, client: TestClient, created: CreatedSession) -> None:
        self.client = client
        self.id = created.session.session_id
        self.token = created.beacon_token
        self.created = created

    def via(self, client: TestClient) -> Session:
        """The same session, posting its beacons to another registry instance."""
        return Session(client, self.created)

    async def beacon(self, *events: dict[str, Any], expect: int = 202, **extra: Any) -> dict[str, Any]:
        body = {"session_id": self.id, "token": self.token, "events": list(events), **extra}
        response = await self.client.post("/beacons", json=body)
        assert response.status == expect, await response.text()
        return dict(await response.json())


async def open_session(
    nc: nats.aio.client.Client,
    on: TestClient,
    *,
    queue: str = "support",
    priority: int = 0,
    custom_pin: str | None = None,
) -> Session:
    """Create a session over NATS (any registry instance answers); its beacons go to ``on``."""
    request = CreateSession(
        queue=queue, priority=priority, customer_id="c1", customer_name="Ada", custom_pin=custom_pin
    )
    return Session(on, await call(nc, REGISTRY_CREATE, request, CreatedSession))


@pytest.fixture(name="new_session")
def _new_session(nc: nats.aio.client.Client, client: TestClient) -> Callable[..., Awaitable[Session]]:
    async def new(**kwargs: Any) -> Session:
        return await open_session(nc, client, **kwargs)

    return new

"""Fixtures for the notification service: app replicas, agent accounts and sockets, session events.

Sessions are driven by publishing ``SessionEvent``s to JetStream, as the registry does; the token service is
stood in for by a small ``nats.micro`` service on the test NATS.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from nats.micro import add_service
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from notification_service.app import create_app
from notification_service.settings import Settings
from shared.accounts import AccountStore, Role
from shared.messaging import (
    MSG_ID_HEADER,
    REGISTRY_END,
    TOKEN_AGENT_ISSUE,
    AgentToken,
    EndSession,
    IssueAgentToken,
    SessionEvent,
    SessionState,
    SessionView,
    Source,
    new_event_id,
    session_subject,
)
from shared.rpc import endpoint
from shared.session_tokens import sign_session_token

SESSION_SECRET = "test-session-token-secret"
FRAME_TIMEOUT_S = 3.0

Client = TestClient[Any, Any]


@pytest.fixture(name="settings")
def _settings(redis_url: str, nats_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "nats_url": nats_url,
            "session_token_secret": SESSION_SECRET,
            "offer_timeout_s": 0.4,
            "timer_poll_s": 0.05,
            "heartbeat_s": 5.0,
            "auth_timeout_s": 1.0,
            "max_wait_s": 60.0,
            "dashboard_keepalive_s": 5.0,
            **overrides,
        }
        return Settings(**values)

    return make


@pytest.fixture(name="replica")
def _replica(aiohttp_client: AiohttpClient, settings: Callable[..., Settings]) -> Callable[..., Awaitable[Client]]:
    """Start a notification replica; every replica of a test shares Redis and NATS."""

    async def start(**overrides: Any) -> Client:
        return await aiohttp_client(create_app(settings(**overrides)))

    return start


@pytest.fixture(name="token_service")
async def _token_service(nc: nats.aio.client.Client) -> AsyncIterator[list[IssueAgentToken]]:
    """Answers ``token.agent.issue`` like the token service; records the requests."""
    issued: list[IssueAgentToken] = []

    async def issue(req: IssueAgentToken) -> AgentToken:
        issued.append(req)
        return AgentToken(
            token=f"jwt-for-{req.account_id}",
            desk_url="https://desk.example/desk?access_token=x",
            pin=req.pin,
            session_id="from-token-service",
            expires_at=int(time.time()) + 3600,
        )

    service = await add_service(nc, name="token-standin", version="0.0.1")
    await service.add_endpoint(name="issue", subject=TOKEN_AGENT_ISSUE, handler=endpoint(IssueAgentToken, issue))
    yield issued
    await service.stop()


@pytest.fixture(name="registry_standin")
async def _registry_standin(nc: nats.aio.client.Client) -> AsyncIterator[list[EndSession]]:
    """Answers ``registry.sessions.end`` like the registry (the session ends); records the requests."""
    ended: list[EndSession] = []

    async def end(req: EndSession) -> SessionView:
        ended.append(req)
        return view(req.session_id, SessionState.ENDED).model_copy(update={"ended_reason": req.reason})

    service = await add_service(nc, name="registry-standin", version="0.0.1")
    await service.add_endpoint(name="end", subject=REGISTRY_END, handler=endpoint(EndSession, end))
    yield ended
    await service.stop()


@pytest.fixture(name="account")
def _account(redis: Redis) -> Callable[..., Awaitable[tuple[str, str]]]:
    async def create(name: str = "agent", role: Role = Role.AGENT) -> tuple[str, str]:
        account, api_key = await AccountStore(redis).create(name, role)
        return account.id, api_key

    return create


class AgentSocket:
    """An agent console's socket: frames are awaited by type, never by sleeping."""

    def __init__(self, ws: Any, agent_id: str) -> None:
        self.ws = ws
        self.agent_id = agent_id
        self.pending: list[dict[str, Any]] = []
        """Frames received but not yet expected (frames of concurrent events may come in any order)."""

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_json(frame)

    async def expect(
        self, type_: str | tuple[str, ...], within: float = FRAME_TIMEOUT_S, **fields: Any
    ) -> dict[str, Any]:
        """The first frame of ``type_`` (with ``fields``), received before or within ``within`` seconds."""
        types = (type_,) if isinstance(type_, str) else type_

        def matches(frame: dict[str, Any]) -> bool:
            return frame["type"] in types and all(frame.get(k) == v for k, v in fields.items())

        for i, frame in enumerate(self.pending):
            if matches(frame):
                return self.pending.pop(i)
        async with asyncio.timeout(within):
            while True:
                msg = await self.ws.receive()
                if msg.type != WSMsgType.TEXT:
                    raise AssertionError(f"socket closed while waiting for {type_}: {msg.type} {msg.data}")
                frame = json.loads(msg.data)
                if matches(frame):
                    return frame
                self.pending.append(frame)

    async def sync(self) -> list[dict[str, Any]]:
        """Round-trip a ping; returns (and consumes) every frame still pending before the pong."""
        await self.send({"type": "ping"})
        await self.expect("pong")
        frames, self.pending = self.pending, []
        return frames

    async def available(self, queues: list[str] | None = None, capacity: int = 1) -> None:
        await self.send(
            {"type": "status", "status": "available", "queues": queues or ["support"], "capacity": capacity}
        )
        await self.expect("status")


@pytest.fixture(name="agent")
def _agent(account: Callable[..., Awaitable[tuple[str, str]]]) -> Callable[..., Awaitable[AgentSocket]]:
    async def connect(
        client: Client,
        name: str = "agent",
        *,
        api_key: str | None = None,
        agent_id: str | None = None,
        **ws_options: Any,
    ) -> AgentSocket:
        if api_key is None:
            agent_id, api_key = await account(name)
        ws = await client.ws_connect("/ws/agent", **ws_options)
        await ws.send_json({"type": "auth", "api_key": api_key})
        sock = AgentSocket(ws, agent_id or "")
        ready = await sock.expect("ready")
        sock.agent_id = ready["agent_id"]
        return sock

    return connect


def view(
    session_id: str,
    state: SessionState,
    *,
    pin: str | None = "ABC123",
    queue: str = "support",
    priority: int = 0,
    updated_at: float | None = None,
    version: int = 0,
    ended_reason: str | None = None,
) -> SessionView:
    now = time.time()
    return SessionView(
        session_id=session_id,
        state=state,
        pin=pin,
        queue=queue,
        priority=priority,
        customer_name=f"customer {session_id}",
        created_at=now,
        updated_at=updated_at or now,
        version=version,
        ended_reason=ended_reason,
    )


def session_event(
    session_id: str,
    state: SessionState,
    prev: SessionState | None = None,
    type_: str | None = None,
    data_size: int = 0,
    **fields: Any,
) -> SessionEvent:
    return SessionEvent(
        event_id=new_event_id(),
        type=type_ or state.value,
        source=Source.BEACON,
        prev_state=prev,
        session=view(session_id, state, **fields),
        data={"padding": "x" * data_size} if data_size else {},
    )


async def publish_event(js: Any, event: SessionEvent) -> None:
    subject = session_subject(event.session.session_id, event.type)
    await js.publish(subject, event.encode(), headers={MSG_ID_HEADER: event.event_id})


@pytest.fixture(name="session")
async def _session(nc: nats.aio.client.Client) -> Callable[..., Awaitable[None]]:
    """Publish a session event as the registry does: each gets the session's next version unless given one."""
    js = nc.jetstream()
    versions: dict[str, int] = {}

    async def publish(session_id: str, state: SessionState, *args: Any, **fields: Any) -> None:
        """``session_event``'s arguments."""
        versions[session_id] = fields.pop("version", versions.get(session_id, 0) + 1)
        await publish_event(js, session_event(session_id, state, *args, version=versions[session_id], **fields))

    return publish


def new_session_id() -> str:
    return uuid.uuid4().hex[:16]


def session_token(session_id: str) -> str:
    return sign_session_token(SESSION_SECRET.encode(), session_id)


class Events:
    """Queue and agent events as published (core subscription on the persisted subjects)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def expect(self, type_: str, within: float = FRAME_TIMEOUT_S, **fields: Any) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                event = await self.queue.get()
                if event["type"] == type_ and all(event.get(k) == v for k, v in fields.items()):
                    return event


@pytest.fixture(name="events")
async def _events(nc: nats.aio.client.Client) -> AsyncIterator[Events]:
    events = Events()

    async def keep(msg: Any) -> None:
        events.queue.put_nowait(json.loads(msg.data))

    sub = await nc.subscribe("cobrowse.queue.>", cb=keep)
    agents = await nc.subscribe("cobrowse.agent.>", cb=keep)
    yield events
    await sub.unsubscribe()
    await agents.unsubscribe()


@pytest.fixture(name="available")
def _available(agent: Callable[..., Awaitable[AgentSocket]]) -> Callable[..., Awaitable[AgentSocket]]:
    """An agent socket that has said it is available (default queue ``support``, capacity 1)."""

    async def connect(
        client: Client, name: str, queues: list[str] | None = None, capacity: int = 1, **options: Any
    ) -> AgentSocket:
        sock = await agent(client, name, **options)
        await sock.available(queues, capacity)
        return sock

    return connect


@pytest.fixture(name="waiting")
def _waiting(session: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[str]]:
    """Publish a new session that starts waiting for an agent; returns its id."""

    async def publish(**fields: Any) -> str:
        session_id = new_session_id()
        await session(session_id, SessionState.WAITING, SessionState.CREATED, **fields)
        return session_id

    return publish

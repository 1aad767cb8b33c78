"""The three services as the fuzz tests see them: real apps on loopback ports, served from one background thread.

Hypothesis and schemathesis drive synchronous tests (schemathesis sends with ``requests``), so the apps cannot
live on the test's own event loop: they run on a loop of their own in a daemon thread, each behind aiohttp's
``TestServer`` on a free port, against real Redis and NATS servers (the package's own, see conftest.py).
WebSocket clients run as coroutines on that same loop (``Stack.run``).

The stack holds every kind of credential a route takes: staff keys of each role (and a disabled one), a live
customer session with its session token (queued in the notification service), and a signed-webhook secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg
from redis.asyncio import Redis

import notification_service.app
import notification_service.settings
import session_registry.app
import session_registry.settings
import token_service.app
import token_service.settings
from shared.accounts import AccountStore, Role
from shared.messaging import QueueEvent, queue_subject
from tests.conftest import LOG_LINES, TEST_SDK_KEY, TEST_SDK_SECRET

T = TypeVar("T")

SESSION_SECRET = "fuzz-session-token-secret-0123456789"
WEBHOOK_SECRET = "fuzz-zoom-webhook-secret"
SERVICES = ("token", "registry", "notification")
PACKAGES = {
    "token": Path(token_service.app.__file__).parent,
    "registry": Path(session_registry.app.__file__).parent,
    "notification": Path(notification_service.app.__file__).parent,
}
OPENAPI = {name: PACKAGES[name] / "openapi.json" for name in SERVICES}

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
"""Generated cases per route (and per WebSocket property); ``FUZZ_EXAMPLES=10000 pytest tests/fuzz`` digs deeper."""

LONE_SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
"""Half of a UTF-16 pair on its own: JSON's grammar allows its escape (``"\\ud800"``), UTF-8 cannot hold it.
``st.text`` leaves surrogates out, so strategies that need them add this one."""

SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and ±Infinity: Python's json writes them and reads them back
    st.text(max_size=80),
    st.tuples(st.text(max_size=40), LONE_SURROGATE, st.text(max_size=40)).map("".join),  # json writes its escape
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
"""Any JSON document, NaN, Infinity and lone surrogate escapes included."""

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a request's latency is not the property under test
    derandomize=True,  # the same cases on every run: a CI failure reproduces locally
    database=None,
    # Shrinking replays failing HTTP cases hundreds of times; the failing case is printed either way.
    # FUZZ_SHRINK=1 turns it on when a minimal example helps.
    phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if os.environ.get("FUZZ_SHRINK") else [])],
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)


def service_settings(redis_url: str, nats_url: str) -> dict[str, Any]:
    """Settings of the three services for one shared Redis and NATS; limits high enough that fuzzing gets past them."""
    common: dict[str, Any] = {"redis_url": redis_url, "nats_url": nats_url, "_env_file": None}
    return {
        "token": token_service.settings.Settings(
            **common,
            zoom_sdk_key=TEST_SDK_KEY,
            zoom_sdk_secret=TEST_SDK_SECRET,
            customer_tokens_per_window=1_000_000,
            agent_tokens_per_window=1_000_000,
            starts_per_window=1_000_000,
            pin_failures_per_agent=1_000_000,
            pin_failures_per_ip=1_000_000,
            registry_timeout_s=10.0,  # a loaded CI machine; the fuzz is not about the registry's latency
        ),
        "registry": session_registry.settings.Settings(
            **common,
            SESSION_TOKEN_SECRET=SESSION_SECRET,
            ZOOM_WEBHOOK_SECRET_TOKEN=WEBHOOK_SECRET,
        ),
        "notification": notification_service.settings.Settings(
            **common,
            session_token_secret=SESSION_SECRET,
            auth_timeout_s=1.0,
            dashboard_keepalive_s=1.0,
        ),
    }


def create_apps(redis_url: str, nats_url: str) -> dict[str, web.Application]:
    config = service_settings(redis_url, nats_url)
    return {
        "token": token_service.app.create_app(config["token"]),
        "registry": session_registry.app.create_app(config["registry"]),
        "notification": notification_service.app.create_app(config["notification"]),
    }


def sign_webhook(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """The headers Zoom sends with ``body``, signed with the stack's webhook secret."""
    ts = timestamp or str(int(time.time()))
    digest = hmac.new(WEBHOOK_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"x-zm-request-timestamp": ts, "x-zm-signature": "v0=" + digest, "Content-Type": "application/json"}


@dataclass
class Stack:
    """Running services, their URLs and credentials; ``run`` executes a coroutine on the services' loop."""

    loop: asyncio.AbstractEventLoop
    urls: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    """Staff API keys by role: ``agent``, ``supervisor``, ``admin``, ``disabled`` (a disabled agent)."""
    nats_url: str = ""
    session_id: str = ""
    session_token: str = ""
    other_session_token: str = ""
    """A good token of another live session: valid, but not for ``session_id``."""

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run_cleanly(self, coro: Coroutine[Any, Any, T]) -> T:
        """``run``, then fail if any log line written meanwhile carries a traceback."""
        mark = log_mark()
        result = self.run(coro)
        assert tracebacks_since(mark) == []
        return result

    def ws_url(self, service: str, path: str) -> str:
        return self.urls[service].replace("http://", "ws://") + path

    def staff_headers(self) -> list[dict[str, str]]:
        """Every kind of ``Authorization`` a staff route may see: none, each role, disabled, unknown, malformed."""
        variants: list[dict[str, str]] = [{}]
        variants += [{"Authorization": f"Bearer {key}"} for key in self.keys.values()]
        variants += [
            {"Authorization": "Bearer cbk_" + "A" * 43},  # well-formed, unknown
            {"Authorization": "Bearer not-a-key"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": "Bearer "},
        ]
        return variants

    def customer_headers(self) -> list[dict[str, str]]:
        return [
            {},
            {"X-Session-Token": self.session_token},
            {"X-Session-Token": self.other_session_token},
            {"X-Session-Token": "v1.x.y"},
        ]


def log_mark() -> int:
    return len(LOG_LINES)


def tracebacks_since(mark: int) -> list[str]:
    """Log lines written since ``mark`` that carry a traceback (a handler or the server failed)."""
    return [line for line in LOG_LINES[mark:] if '"exception"' in line or "Traceback" in line]


def is_error_body(body: bytes) -> bool:
    """Whether ``body`` is our JSON error: ``{"error": {"code": str, "message": str}, ...}``."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    error = data.get("error") if isinstance(data, dict) else None
    return isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)


def raw_request(url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, without the blank line) as bytes no HTTP client would write.

    Returns the status and body; a stream or upgraded socket that was accepted is closed at once (body ``b""``).
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        if response.status == 101 or response.getheader("Content-Type", "").startswith("text/event-stream"):
            return response.status, b""
        return response.status, response.read()


async def _start(stack: Stack, apps: dict[str, web.Application]) -> list[TestServer]:
    servers = []
    for name in SERVICES:
        server = TestServer(apps[name], host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        stack.urls[name] = str(server.make_url("")).rstrip("/")
    return servers


async def _credentials(stack: Stack, redis_url: str, nats_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        accounts = AccountStore(redis)
        for role in (Role.AGENT, Role.SUPERVISOR, Role.ADMIN):
            _, stack.keys[role.value] = await accounts.create(f"fuzz {role.value}", role)
        disabled, stack.keys["disabled"] = await accounts.create("fuzz disabled", Role.AGENT)
        await accounts.set_disabled(disabled.id, True)
    finally:
        await redis.aclose()
    nc = await nats.connect(nats_url)
    queued: asyncio.Queue[str] = asyncio.Queue()

    async def on_queued(msg: Msg) -> None:
        await queued.put(QueueEvent.model_validate_json(msg.data).session_id)

    await nc.subscribe(queue_subject("support", "queued"), cb=on_queued)
    started = []
    try:
        async with ClientSession() as http:
            for pin in ("FUZZ01", "FUZZ02"):
                async with http.post(f"{stack.urls['token']}/api/customer/start", json={"userName": "Fuzz"}) as resp:
                    assert resp.status == 200, await resp.text()
                    body = await resp.json()
                started.append(body)
                event = {"id": f"pin-{pin}", "name": "pincode_updated", "ts": 1, "seq": 1, "payload": {"pinCode": pin}}
                beacon = {"session_id": body["session_id"], "token": body["session_token"], "events": [event]}
                async with http.post(f"{stack.urls['registry']}/beacons", json=beacon) as resp:
                    assert resp.status == 202, await resp.text()
            # The notification service queues a request once the registry's event reaches it.
            waiting = {body["session_id"] for body in started}
            async with asyncio.timeout(10):
                while waiting:
                    waiting.discard(await queued.get())
    finally:
        await nc.drain()
    stack.session_id, stack.session_token = started[0]["session_id"], started[0]["session_token"]
    stack.other_session_token = started[1]["session_token"]


def serve(redis_url: str, nats_url: str) -> Iterator[Stack]:
    """Start the three services with their credentials; stop everything when the generator is closed."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-stack", daemon=True)
    thread.start()
    stack = Stack(loop, nats_url=nats_url)
    servers = stack.run(_start(stack, create_apps(redis_url, nats_url)))
    try:
        stack.run(_credentials(stack, redis_url, nats_url))
        yield stack
    finally:
        for server in reversed(servers):
            stack.run(server.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

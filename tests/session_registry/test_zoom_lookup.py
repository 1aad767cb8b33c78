"""Real Zoom mode: webhooks that name only Zoom's session id are correlated through Zoom's REST API (a local
stand-in, ``tests/zoomapi.py``), in the background, without ever delaying Zoom's answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs
from structlog.typing import EventDict

from shared.messaging import SessionState, Source
from tests.conftest import LOG_LINES
from tests.zoomapi import API_KEY, API_SECRET, ZoomApiStandIn, free_port

from .conftest import KEYS, ev, open_session
from .test_versions import assert_contract
from .test_webhooks import signed

ZOOM_PENDING = KEYS.zoom_pending.key(KEYS.zoom_pending.base(), "pending")
ZOOM_QUEUE = KEYS.zoom_pending.base() + ":q:"

ZOOM_DEADLINE_S = 3.0  # Zoom counts a delivery as failed past this


def zoom_settings(stand_in: ZoomApiStandIn, **overrides: Any) -> dict[str, Any]:
    return {
        "ZOOM_API_URL": stand_in.url,
        "ZOOM_API_KEY": API_KEY,
        "ZOOM_API_SECRET": API_SECRET,
        "zoom_api_timeout_s": 1.0,
        "zoom_lookup_poll_interval_s": 0.05,
        "zoom_lookup_retry_base_s": 0.05,
        "zoom_lookup_retry_max_s": 0.4,
        **overrides,
    }


@pytest.fixture(name="zoom_api")
async def _zoom_api() -> AsyncIterator[ZoomApiStandIn]:
    stand_in = ZoomApiStandIn()
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def started(zoom_id: str) -> dict[str, Any]:
    """``cobrowse.session_started`` as Zoom documents it (facts 9.1): no PIN."""
    return _webhook(
        "cobrowse.session_started",
        session_id=zoom_id,
        start_time="2026-11-30T09:00:00Z",
        role_type="customer",
        start_url="https://shop.example/checkout",
        user_id="zu-customer-1",
        user_name="Ada",
    )


def joined(zoom_id: str, role: str = "agent", user: str = "zu-agent-1") -> dict[str, Any]:
    return _user_event("joined", zoom_id, role, user, join_time="2026-11-30T09:01:00Z")


def left(zoom_id: str, role: str = "agent", user: str = "zu-agent-1") -> dict[str, Any]:
    return _user_event("left", zoom_id, role, user, leave_time="2026-11-30T09:05:00Z", leave_reason="left the session")


def _user_event(kind: str, zoom_id: str, role: str, user: str, **times: str) -> dict[str, Any]:
    """``session_user_joined`` / ``_left`` as Zoom sends them: Zoom's ids, no PIN."""
    return _webhook(
        f"cobrowse.session_user_{kind}",
        session_id=zoom_id,
        user_connection_id=f"conn-{user}",
        user_id=user,
        user_name="Grace",
        role_type=role,
        **times,
    )


def ended(zoom_id: str, pin: str) -> dict[str, Any]:
    return _webhook(
        "cobrowse.session_ended",
        session_id=zoom_id,
        session_pin=pin,
        start_time="2026-11-30T09:00:00Z",
        end_time="2026-11-30T09:06:00Z",
        end_reason="ended by customer",
    )


def _webhook(event: str, **obj: Any) -> dict[str, Any]:
    return {"event": event, "event_ts": int(time.time() * 1000), "payload": {"account_id": "acc", "object": obj}}


async def deliver(client, body: dict[str, Any], raw: bytes | None = None) -> dict[str, Any]:
    """Post a webhook as Zoom does and check Zoom's deadline: the answer never waits for the REST lookup."""
    data, headers = signed(body)
    async with asyncio.timeout(ZOOM_DEADLINE_S):
        response = await client.post("/webhooks/zoom", data=raw or data, headers=headers)
        assert response.status == 200, await response.text()
        return dict(await response.json())


def no_secret_logged(*captured: list[EventDict]) -> None:
    lines = LOG_LINES + [json.dumps(entry, default=str) for entries in captured for entry in entries]
    leaks = [line for line in lines if API_SECRET in line or "Bearer " in line or "eyJ" in line]
    assert leaks == []


class Logs(list[EventDict]):
    """Captured log events that a test can await (what the registry's background loop did is logged)."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def __call__(self, _logger: object, method: str, event_dict: EventDict) -> EventDict:
        self.append({**event_dict, "log_level": method})
        self.changed.set()
        raise structlog.DropEvent  # kept here; nothing printed

    def of(self, event: str) -> list[EventDict]:
        return [e for e in self if e["event"] == event]

    async def wait(self, predicate: Callable[[Logs], bool], within_s: float = 5.0) -> None:
        async with asyncio.timeout(within_s):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()


@contextmanager
def awaitable_logs() -> Iterator[Logs]:
    logs = Logs()
    with capture_logs(processors=[logs]):
        yield logs


KINDS = {
    "session_started": (started, "session_started"),
    "session_user_joined": (joined, "agent_joined"),
    "session_user_left": (left, "agent_left"),
}


@pytest.mark.cluster
@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_pinless_webhook_kind_is_correlated_through_the_rest_api(
    kind, zoom_api, start_registry, nc, events, redis
) -> None:
    first = await start_registry(**zoom_settings(zoom_api))
    await start_registry(**zoom_settings(zoom_api))  # a second replica runs the lookup loop too
    session = await open_session(nc, first)
    await session.beacon(ev("pincode_updated", {"pinCode": "340001"}), ev("agent_joined"))
    zoom_api.sessions["zs-" + kind] = "340001"
    make, published = KINDS[kind]
    assert await deliver(first, make("zs-" + kind)) == {"status": "pending"}
    event = (await events.wait(session.id, published, count=2 if published == "agent_joined" else 1))[-1]
    assert event.source is Source.WEBHOOK
    assert await redis.get(KEYS.zoom_key(f"zs-{kind}")) == session.id
    # the mapping is known now: later webhooks apply at once, without another REST call
    assert (await deliver(first, joined("zs-" + kind, user="zu-agent-2")))["status"] == "applied"
    assert [c.session_id for c in zoom_api.calls] == ["zs-" + kind]
    assert await redis.zcard(ZOOM_PENDING) == 0
    no_secret_logged()


@pytest.mark.cluster
async def test_a_whole_zoom_session_as_zoom_sends_it(zoom_api, start_registry, nc, events) -> None:
    registry = await start_registry(**zoom_settings(zoom_api))
    session = await open_session(nc, registry)
    await session.beacon(ev("pincode_updated", {"pinCode": "340002"}))
    zoom_api.sessions["zs-whole"] = "340002"
    for body in (started("zs-whole"), joined("zs-whole"), joined("zs-whole", "customer", "zu-c")):
        await deliver(registry, body)
    (agent,) = await events.wait(session.id, "agent_joined")
    await events.wait(session.id, "customer_joined")
    assert agent.session.state is SessionState.ACTIVE
    await deliver(registry, left("zs-whole"))
    await deliver(registry, ended("zs-whole", "340002"))
    (end,) = await events.wait(session.id, "ended")
    assert end.source is Source.WEBHOOK and end.session.ended_reason == "ended_by_zoom"
    assert len(zoom_api.calls) == 1
    types = [e.type for e in assert_contract(events, session.id)]
    assert types == ["created", "pin_assigned", "session_started", "agent_joined", "customer_joined"][:2] + types[2:]
    assert sorted(types[2:5]) == ["agent_joined", "customer_joined", "session_started"]
    assert types[5:] == ["agent_left", "ended"]


@pytest.mark.cluster
async def test_many_deliveries_for_one_unknown_id_on_two_replicas(zoom_api, start_registry, nc, events, redis) -> None:
    """Deliveries racing the lookup on two replicas: one REST call, every webhook applied exactly once."""
    # Room for all 20 agents: the two replicas' deliveries interleave in any order (a replica's concurrent webhooks
    # share Redis round trips), and joins arriving ahead of the leaves must not meet the agent cap.
    settings = zoom_settings(zoom_api) | {"max_agents": 20}
    replicas = [await start_registry(**settings), await start_registry(**settings)]
    session = await open_session(nc, replicas[0])
    await session.beacon(ev("pincode_updated", {"pinCode": "340007"}))
    zoom_api.sessions["zs-many"] = "340007"
    bodies = [(joined if i % 2 == 0 else left)("zs-many", role="agent", user=f"zu-agent-{i // 2}") for i in range(40)]
    raws = [json.dumps(body).encode() for body in bodies]
    deliveries = [deliver(replicas[i % 2], body, raw) for i, (body, raw) in enumerate(zip(bodies, raws, strict=True))]
    retries = [
        deliver(replicas[(i + 1) % 2], body, raw) for i, (body, raw) in enumerate(zip(bodies, raws, strict=True))
    ]
    await asyncio.gather(*deliveries, *retries)  # every delivery twice, as Zoom retries
    await events.wait(session.id, "agent_left", count=20)
    assert await redis.hmget(KEYS.session(session.id), "aj_w", "al_w") == ["20", "20"]
    assert len(zoom_api.calls) == 1
    assert await redis.zcard(ZOOM_PENDING) == 0


@pytest.mark.cluster
async def test_zoom_down_the_webhook_is_answered_and_applied_once_zoom_is_back(
    start_registry, nc, events, redis
) -> None:
    stand_in = ZoomApiStandIn(port=free_port())  # not started yet: connection refused
    stand_in.sessions["zs-down"] = "340003"
    registry = await start_registry(**zoom_settings(stand_in))
    session = await open_session(nc, registry)
    await session.beacon(ev("pincode_updated", {"pinCode": "340003"}))
    body = joined("zs-down")
    raw = json.dumps(body).encode()
    with awaitable_logs() as logs:
        assert (await deliver(registry, body, raw))["status"] == "pending"
        assert (await deliver(registry, body, raw))["status"] == "pending"  # Zoom's retry of the same delivery
        await logs.wait(lambda logs: len(logs.of("zoom_lookup_failed")) >= 2)
    assert {e["reason"] for e in logs.of("zoom_lookup_failed")} == {"ClientConnectorError"}
    await stand_in.start()
    try:
        (agent,) = await events.wait(session.id, "agent_joined")
    finally:
        await stand_in.stop()
    assert agent.session.agents == 1
    assert await redis.hget(KEYS.session(session.id), "aj_w") == "1"  # two deliveries, applied once
    no_secret_logged(logs)


@pytest.mark.cluster
async def test_a_slow_zoom_never_delays_the_answer(zoom_api, start_registry, nc, events) -> None:
    zoom_api.delay_s = 2.0  # past zoom_api_timeout_s: every lookup times out
    zoom_api.sessions["zs-slow"] = "340004"
    registry = await start_registry(**zoom_settings(zoom_api))
    session = await open_session(nc, registry)
    await session.beacon(ev("pincode_updated", {"pinCode": "340004"}))
    assert (await deliver(registry, started("zs-slow")))["status"] == "pending"
    await zoom_api.wait_calls(1)  # one timed-out lookup reached the stand-in
    zoom_api.delay_s = 0
    (event,) = await events.wait(session.id, "session_started")
    assert event.source is Source.WEBHOOK


@pytest.mark.cluster
async def test_failing_lookups_are_retried_with_backoff(zoom_api, start_registry, nc, events) -> None:
    zoom_api.fail_next = [500, 503, 429]
    zoom_api.sessions["zs-flaky"] = "340005"
    registry = await start_registry(**zoom_settings(zoom_api))
    session = await open_session(nc, registry)
    await session.beacon(ev("pincode_updated", {"pinCode": "340005"}))
    with awaitable_logs() as logs:
        await deliver(registry, joined("zs-flaky"))
        await events.wait(session.id, "agent_joined")
    failures = [(e["status"], e["attempt"], e["retry_in_s"]) for e in logs.of("zoom_lookup_failed")]
    assert failures == [(500, 1, 0.05), (503, 2, 0.1), (429, 3, 0.2)]
    assert [c.status for c in zoom_api.calls] == [500, 503, 429, 200]
    no_secret_logged(logs)


@pytest.mark.cluster
async def test_a_webhook_may_come_before_the_page_reports_its_pin(zoom_api, start_registry, nc, events) -> None:
    zoom_api.sessions["zs-early"] = "340006"
    registry = await start_registry(**zoom_settings(zoom_api))
    session = await open_session(nc, registry)
    await deliver(registry, started("zs-early"))
    await zoom_api.wait_calls(1)
    await session.beacon(ev("pincode_updated", {"pinCode": "340006"}))  # the beacon lost the race
    await events.wait(session.id, "session_started")
    assert len(zoom_api.calls) == 1  # later attempts use the cached PIN


@pytest.mark.cluster
async def test_an_id_zoom_does_not_know_is_dropped_without_retries(zoom_api, start_registry, redis) -> None:
    registry = await start_registry(**zoom_settings(zoom_api))
    with awaitable_logs() as logs:
        await deliver(registry, joined("zs-nobody"))
        await logs.wait(lambda logs: bool(logs.of("webhook_uncorrelated")))
    assert [e["reason"] for e in logs.of("webhook_uncorrelated")] == ["unknown_to_zoom"]
    assert [c.status for c in zoom_api.calls] == [404]
    assert [k async for k in redis.scan_iter("reg:{zoomq}*")] == []


@pytest.mark.cluster
async def test_lookups_are_rate_limited_across_replicas(zoom_api, start_registry, nc, events) -> None:
    settings = zoom_settings(zoom_api, zoom_lookup_rate=1)
    first, second = await start_registry(**settings), await start_registry(**settings)
    sessions = []
    for i, registry in enumerate([first, second, first]):
        session = await open_session(nc, registry)
        await session.beacon(ev("pincode_updated", {"pinCode": f"34010{i}"}))
        zoom_api.sessions[f"zs-rate-{i}"] = f"34010{i}"
        await deliver(registry, started(f"zs-rate-{i}"))
        sessions.append(session)
    for session in sessions:
        await events.wait(session.id, "session_started")
    gaps = [b.at - a.at for a, b in zip(zoom_api.calls, zoom_api.calls[1:], strict=False)]
    assert len(zoom_api.calls) == 3 and all(gap >= 0.9 for gap in gaps), gaps


@pytest.mark.cluster
async def test_without_api_credentials_pinless_webhooks_stay_uncorrelated(client, redis) -> None:
    assert (await deliver(client, joined("zs-no-api")))["status"] == "uncorrelated"
    assert await redis.exists(ZOOM_PENDING) == 0


@pytest.mark.cluster
async def test_one_broken_entry_does_not_stop_the_lookups(zoom_api, start_registry, nc, events, redis) -> None:
    registry = await start_registry(**zoom_settings(zoom_api))
    session = await open_session(nc, registry)
    await session.beacon(ev("pincode_updated", {"pinCode": "340008"}))
    zoom_api.sessions.update({"zs-broken": "340008", "zs-fine": "340008"})
    await redis.rpush(ZOOM_QUEUE + "zs-broken", "{not json")  # as if written by a buggy older replica
    await redis.zadd(ZOOM_PENDING, {"zs-broken": 0})
    with awaitable_logs() as logs:
        await deliver(registry, joined("zs-fine"))
        await events.wait(session.id, "agent_joined")
        await logs.wait(lambda logs: bool(logs.of("zoom_lookup_crashed")))
    assert logs.of("zoom_lookup_crashed")[0]["zoom_session_id"] == "zs-broken"

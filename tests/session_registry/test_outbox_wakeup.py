"""The outbox publisher is woken by every write, on any replica: the poll interval is only a backstop.

Every test sets the poll interval far beyond its deadline, so an event that waited for a poll fails it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import nats
import pytest
import structlog
from aiohttp.test_utils import TestClient

from session_registry.settings import Settings
from session_registry.store import SessionStore
from shared.messaging import REGISTRY_OUTBOX_WRITTEN
from shared.redis_conn import close_redis, redis_client

from .conftest import EventLog, MakeSettings, OwnNats, Session, ev, open_session

pytestmark = pytest.mark.cluster

POLL_S = 30.0  # no test below may wait for the poll
# The publisher also wakes to renew its lease (a third of its lifetime): a long lease keeps that from hiding a poll.
SLOW_POLL = {"outbox_poll_interval_s": POLL_S, "outbox_lease_s": 3 * POLL_S}
Start = Callable[..., Awaitable[TestClient]]


async def replica_without_lease(start_registry: Start, nc: nats.aio.client.Client, events: EventLog) -> TestClient:
    """The second of two registries; the first holds every partition's publishing lease (it took them while alone,
    and with the long lease here it hands none over before the test ends)."""
    holder = await start_registry(**SLOW_POLL)
    session = await open_session(nc, holder)
    await events.wait(session.id, "created", within_s=2.0)
    return await start_registry(**SLOW_POLL)


async def assign_pins(sessions: list[Session], events: EventLog, first_pin: int) -> None:
    """Post every session's ``pincode_updated`` at once; each must be on JetStream within 2 s."""
    await asyncio.gather(
        *(s.beacon(ev("pincode_updated", {"pinCode": str(pin)})) for pin, s in enumerate(sessions, first_pin))
    )
    for session in sessions:
        await events.wait(session.id, "pin_assigned", within_s=2.0)


async def test_writes_during_batches_in_flight_are_published_without_waiting_for_the_poll(
    start_registry: Start, nc: nats.aio.client.Client, events: EventLog
) -> None:
    """Beacons in waves of 50 overlap the publisher's reads and JetStream round trips; none may miss a wake-up."""
    client = await start_registry(**SLOW_POLL)
    sessions = [await open_session(nc, client) for _ in range(200)]
    for wave in range(0, len(sessions), 50):
        await assign_pins(sessions[wave : wave + 50], events, 400000 + wave)


async def test_a_write_on_a_replica_without_the_lease_is_published_without_waiting_for_a_poll(
    start_registry: Start, nc: nats.aio.client.Client, events: EventLog
) -> None:
    other = await replica_without_lease(start_registry, nc, events)
    for n in range(20):  # one at a time: each needs its own nudge
        await assign_pins([(await open_session(nc, other)).via(other)], events, 500000 + n)


async def test_a_busy_replica_without_the_lease_nudges_once_per_round_trip_not_per_beacon(
    start_registry: Start, nc: nats.aio.client.Client, events: EventLog
) -> None:
    other = await replica_without_lease(start_registry, nc, events)
    sessions = [(await open_session(nc, other)).via(other) for _ in range(200)]
    nudges = 0

    async def count(_msg: Any) -> None:
        nonlocal nudges
        nudges += 1

    sub = await nc.subscribe(REGISTRY_OUTBOX_WRITTEN, cb=count)
    await nc.flush()
    await assign_pins(sessions, events, 600000)
    await sub.unsubscribe()
    assert 1 <= nudges < len(sessions) // 2


async def write_unannounced(make_settings: MakeSettings, session: Session, pin: str) -> None:
    """A ``pincode_updated`` written to the session's outbox by a replica that died before it could wake anyone."""
    settings = make_settings()
    redis = redis_client(settings.redis_url, mode=settings.redis_mode)
    try:
        event = {"id": uuid.uuid4().hex, "name": "pincode_updated", "ts": int(time.time() * 1000), "seq": 1, "pin": pin}
        await SessionStore(redis, settings).apply(session.id, "beacon", [event])
    finally:
        await close_redis(redis)


async def test_a_write_nobody_announced_is_published_by_the_poll(
    start_registry: Start, make_settings: MakeSettings, nc: nats.aio.client.Client, events: EventLog
) -> None:
    """A round reads only the outboxes it was told of; the poll reads every one it holds."""
    registry = await start_registry(outbox_poll_interval_s=0.3)
    session = await open_session(nc, registry)
    await events.wait(session.id, "created", within_s=2.0)
    await write_unannounced(make_settings, session, "710001")
    await events.wait(session.id, "pin_assigned", within_s=3.0)


async def test_a_nudge_naming_no_partition_wakes_every_partition_held(
    start_registry: Start, make_settings: MakeSettings, nc: nats.aio.client.Client, events: EventLog
) -> None:
    """An older replica's nudge has no payload: the holder reads all its outboxes at once, not at the poll."""
    registry = await start_registry(**SLOW_POLL)
    session = await open_session(nc, registry)
    await events.wait(session.id, "created", within_s=2.0)
    await write_unannounced(make_settings, session, "710002")
    await nc.publish(REGISTRY_OUTBOX_WRITTEN)
    await events.wait(session.id, "pin_assigned", within_s=2.0)


class RetryLog:
    """Collects the publisher's ``outbox_retry`` log events; awaitable until one announces a long enough pause."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._reconnect_retry = asyncio.Event()
        self._long = asyncio.Event()
        self._min_delay = float("inf")

    def __call__(self, _logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        if event["event"] == "outbox_retry":
            self.delays.append(event["retry_in_s"])
            if event["retry_in_s"] >= self._min_delay:
                self._long.set()
        elif event["event"] == "outbox_retry_on_reconnect":
            self._reconnect_retry.set()
        raise structlog.DropEvent

    async def until_reconnect_retry(self, within_s: float) -> None:
        async with asyncio.timeout(within_s):
            await self._reconnect_retry.wait()

    async def until_pause_of(self, seconds: float, within_s: float) -> None:
        self._min_delay = seconds
        async with asyncio.timeout(within_s):
            await self._long.wait()


@pytest.fixture(name="retry_log")
def _retry_log() -> Iterator[RetryLog]:
    log = RetryLog()
    structlog.configure(processors=[log])
    yield log
    structlog.reset_defaults()


def test_the_retry_pause_is_capped_at_one_second_by_default() -> None:
    assert Settings.model_fields["outbox_retry_max_s"].default == 1.0


@pytest.mark.timeout(60)
async def test_publishing_resumes_as_soon_as_nats_reconnects_not_after_the_pause(
    own_nats: OwnNats, start_registry: Start, retry_log: RetryLog
) -> None:
    # A long pause cap, so that only the reconnect can explain a quick retry.
    registry = await start_registry(
        nats_url=own_nats.url, outbox_retry_max_s=60.0, publish_timeout_s=0.1, outbox_poll_interval_s=POLL_S
    )
    nc = await nats.connect(own_nats.url, max_reconnect_attempts=0)
    session = await open_session(nc, registry)
    await nc.close()

    own_nats.stop()
    await session.beacon(ev("pincode_updated", {"pinCode": "700001"}))
    # A pause longer than a NATS restart takes even on a busy machine: the restart happens inside it.
    await retry_log.until_pause_of(6.4, within_s=25)
    own_nats.start()
    restarted = asyncio.get_running_loop().time()

    watcher = await nats.connect(own_nats.url, max_reconnect_attempts=0)
    log = EventLog()
    await watcher.jetstream().subscribe(f"cobrowse.session.{session.id}.>", cb=log.add, ordered_consumer=True)
    await log.wait(session.id, "pin_assigned", within_s=10)
    await watcher.close()
    # The event may reach the stream first from nats-py's reconnect buffer (an attempt made while NATS was down),
    # before the reconnect callback has logged the publisher's retry: wait for that retry too.
    await retry_log.until_reconnect_retry(within_s=10)
    # nats-py waits 0.5 s before reconnecting; the pause it interrupted had 6.4 s to go.
    assert asyncio.get_running_loop().time() - restarted < 2.5

"""Failover mid-flow: the whole system on a 3-master Redis Cluster (a replica each) and a 3-node NATS cluster (R3).

While customers' pages post beacons, one Redis master is killed with SIGKILL (its replica takes over) and so is
the node leading the ``COBROWSE`` stream. What must hold:

- no accepted beacon is lost: every PIN change a beacon brought and the registry accepted (202) reaches JetStream;
- offers flow again within 20 s of the kills: a new customer's request is offered to an available agent.

Beacons sent during the failover may be refused (503, the page retries); they were not accepted, so they do not
count. Each PIN change is its own ``pin_changed`` event, which is how an accepted beacon is found in the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import string
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import nats
import pytest
from nats.js import JetStreamContext

from devstack.servers import RedisCluster, start_redis_cluster
from devstack.simulator import Customer, Urls
from devstack.stack import Stack
from shared.accounts import Role
from shared.messaging import STREAM, SessionEvent, ensure_streams
from tests.conftest import TEST_SDK_KEY, TEST_SDK_SECRET

from .conftest import NatsCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(180)]

STACK_ENV = {
    "ZOOM_SDK_KEY": TEST_SDK_KEY,
    "ZOOM_SDK_SECRET": TEST_SDK_SECRET,
    "ZOOM_SIMULATED": "true",
    "LOG_LEVEL": "INFO",
    "REDIS_MODE": "cluster",
    "NATS_STREAM_REPLICAS": "3",
    # Every customer of the test starts from one address.
    "TOKEN_STARTS_PER_WINDOW": "1000",
}
OFFERS_BACK_WITHIN_S = 20.0


@pytest.fixture(name="redis_cluster")
def _redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """This test's own cluster: it kills one of its masters."""
    cluster = start_redis_cluster(tmp_path / "redis")
    yield cluster
    cluster.stop()


async def _jetstream_ready(js: JetStreamContext) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                await ensure_streams(js, replicas=3)
                return
            except Exception:  # noqa: BLE001 - "JetStream not ready" in its several shapes, while a leader is elected
                await asyncio.sleep(0.2)  # JetStream offers no event for "ready": ask again


@pytest.fixture(name="stack")
async def _stack(tmp_path: Path, redis_cluster: RedisCluster, nats_cluster: NatsCluster) -> AsyncIterator[Stack]:
    nc = await nats.connect(nats_cluster.url.split(","))
    await _jetstream_ready(nc.jetstream())
    await nc.close()
    stack = await asyncio.to_thread(
        Stack.start, tmp_path / "stack", redis_url=redis_cluster.url, nats_url=nats_cluster.url, env=STACK_ENV
    )
    yield stack
    await asyncio.to_thread(stack.stop)


def _pin() -> str:
    return "".join(random.choices(string.ascii_uppercase + string.digits, k=6))


class Load:
    """Customers whose pages change their PIN over and over; remembers each PIN change the registry accepted."""

    def __init__(self, http: aiohttp.ClientSession, urls: Urls) -> None:
        self.http = http
        self.urls = urls
        self.accepted: dict[str, set[str]] = {}
        self.refused = 0
        self.progress = asyncio.Condition()
        """Notified at each accepted PIN change."""

    def total(self) -> int:
        return sum(map(len, self.accepted.values()))

    async def reached(self, total: int) -> None:
        async with self.progress:
            await self.progress.wait_for(lambda: self.total() >= total)

    async def customer(self, n: int, stop: asyncio.Event) -> None:
        customer = await Customer.start(self.http, self.urls, "load", f"load {n}")
        accepted = self.accepted.setdefault(customer.session_id, set())
        while not stop.is_set():
            pin = _pin()
            try:
                await customer.send("pincode_updated", {"pinCode": pin})
                accepted.add(pin)
                async with self.progress:
                    self.progress.notify_all()
            except (aiohttp.ClientError, TimeoutError):
                self.refused += 1  # a 503 during the failover: not accepted, so it does not count
            await asyncio.sleep(0.05)  # the page's pace: 20 PIN changes a second


async def _agent(http: aiohttp.ClientSession, url: str, api_key: str, offers: asyncio.Queue[str]) -> None:
    """An agent available for ``failover`` that reconnects as the console does; puts each offer's session in
    ``offers``."""
    while True:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with http.ws_connect(url.replace("http", "ws", 1) + "/ws/agent", heartbeat=5) as ws:
                await ws.send_json({"type": "auth", "api_key": api_key})
                if (await ws.receive_json(timeout=10)).get("type") != "ready":
                    continue
                await ws.send_json({"type": "status", "status": "available", "queues": ["failover"], "capacity": 50})
                async for message in ws:
                    frame = json.loads(message.data)
                    if frame.get("type") == "offer":
                        offers.put_nowait(frame["session_id"])
                        await ws.send_json({"type": "decline", "session_id": frame["session_id"]})
        await asyncio.sleep(0.2)  # the console's reconnect backoff


async def _offered(http: aiohttp.ClientSession, urls: Urls, offers: asyncio.Queue[str]) -> None:
    """A new customer asks for help in ``failover``; returns once its request was offered to the agent."""
    customer = await Customer.start(http, urls, "failover", "probe")
    await customer.send("pincode_updated", {"pinCode": _pin()})
    while await offers.get() != customer.session_id:
        pass


async def _until_offers_flow(http: aiohttp.ClientSession, urls: Urls, offers: asyncio.Queue[str]) -> None:
    while True:
        try:
            async with asyncio.timeout(3):
                await _offered(http, urls, offers)
            return
        except (aiohttp.ClientError, TimeoutError):
            continue  # the system is still failing over: a new customer tries again


async def _published_pins(js: JetStreamContext) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    sub = await js.subscribe("cobrowse.session.>", ordered_consumer=True)
    try:
        pending = (await js.stream_info(STREAM)).state.messages
        while pending:
            message = await sub.next_msg(timeout=2)
            pending = message.metadata.num_pending
            event = SessionEvent.model_validate_json(message.data)
            if event.type in ("pin_assigned", "pin_changed"):
                pins.setdefault(event.session.session_id, set()).add(str(event.data.get("pin")))
    finally:
        await sub.unsubscribe()
    return pins


def _stream_leader_index(leader: str | None) -> int:
    return next(i for i in range(3) if f"n{i}" == leader)


async def test_no_accepted_beacon_lost_and_offers_resume_after_a_master_and_the_stream_leader_die(
    stack: Stack, redis_cluster: RedisCluster, nats_cluster: NatsCluster
) -> None:
    urls = Urls(stack.urls["token"], stack.urls["registry"], stack.urls["notification"])
    api_key = await stack.create_account("Lee", Role.AGENT)
    nc = await nats.connect(nats_cluster.url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    offers: asyncio.Queue[str] = asyncio.Queue()
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            agent = asyncio.create_task(_agent(http, urls.notification, api_key, offers))
            load = Load(http, urls)
            customers = [asyncio.create_task(load.customer(n, stop)) for n in range(12)]
            try:
                async with asyncio.timeout(20):
                    await _offered(http, urls, offers)  # the flow works before the failure
                    await load.reached(100)

                leader = (await js.stream_info(STREAM)).cluster
                victim = redis_cluster.masters()[0]
                victim.process.kill()
                nats_cluster.kill(_stream_leader_index(leader.leader if leader else None))
                killed_at = time.monotonic()

                await _until_offers_flow(http, urls, offers)
                back_after_s = time.monotonic() - killed_at
                # The load goes on for 100 more accepted PIN changes after the recovery, then stops.
                async with asyncio.timeout(10):
                    await load.reached(load.total() + 100)
            finally:
                stop.set()
                await asyncio.gather(*customers, return_exceptions=True)
                agent.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await agent

        assert back_after_s <= OFFERS_BACK_WITHIN_S, f"offers came back after {back_after_s:.1f} s"
        accepted = {sid: pins for sid, pins in load.accepted.items() if pins}
        published: dict[str, set[str]] = {}
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(nats.errors.Error, TimeoutError):  # JetStream may still be electing a leader
                published = await _published_pins(js)
            missing = {sid: pins - published.get(sid, set()) for sid, pins in accepted.items()}
            missing = {sid: pins for sid, pins in missing.items() if pins}
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)  # the outboxes are still publishing: nothing to await but the stream itself
    finally:
        await nc.close()
    total = sum(map(len, accepted.values()))
    assert not missing, (
        f"{sum(map(len, missing.values()))} of {total} accepted PIN changes never reached JetStream "
        f"({sum(map(len, published.values()))} published in {len(published)} sessions)"
    )
    print(f"\nfailover: offers back after {back_after_s:.1f} s; {total} accepted beacons, {load.refused} refused")

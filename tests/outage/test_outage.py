"""Redis, then NATS, stopped for 2 s while customers start sessions and staff read them.

During the outage every answer is a success or a 503 with ``Retry-After`` (never a 500); afterwards the same
processes serve again without a restart, and nothing is half-done: once each failed start is retried with its
``Idempotency-Key``, exactly the sessions of the starts exist (none left behind by a start whose reply was lost).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpServer
from redis.asyncio import Redis

from devstack.servers import ServerProcess, start_nats, start_redis
from session_registry.keyspaces import Keyspaces
from shared.accounts import Role
from tests.burst.conftest import Desk, acceptable, running_desk

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

OUTAGE_S = 2.0  # the outage the issue names
WORKERS = 16
RECOVERED_AFTER = 20  # successful starts after the restart that prove recovery


@dataclass
class Load:
    """Customers starting sessions and a supervisor reading them, until stopped; every answer kept."""

    desk: Desk
    supervisor_key: str
    answers: Counter[int] = field(default_factory=Counter)
    bad: list[tuple[int, str]] = field(default_factory=list)
    started: dict[str, str] = field(default_factory=dict)
    """userName -> session id of every start that answered 200."""
    failed: list[str] = field(default_factory=list)
    """userName of every start that did not."""
    successes: int = 0
    milestone: asyncio.Event = field(default_factory=asyncio.Event)
    milestone_at: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def expect(self, more: int) -> asyncio.Event:
        self.milestone, self.milestone_at = asyncio.Event(), self.successes + more
        return self.milestone

    def _record(self, status: int, headers: dict[str, str], what: str) -> None:
        self.answers[status] += 1
        if not acceptable(status, headers):
            self.bad.append((status, what))
        if 200 <= status < 300:
            self.successes += 1
            if self.successes >= self.milestone_at:
                self.milestone.set()

    async def worker(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            name = f"w{n}-{i}"
            start = {"json": {"userName": name}, "headers": {"Idempotency-Key": name}}
            async with self.desk.http.post(f"{self.desk.token}/api/customer/start", **start) as r:
                self._record(r.status, dict(r.headers), "start")
                if r.status == 200:
                    self.started[name] = (await r.json())["session_id"]
                else:
                    self.failed.append(name)
            if self.started:
                session_id = next(reversed(self.started.values()))
                headers = {"Authorization": f"Bearer {self.supervisor_key}"}
                async with self.desk.http.get(f"{self.desk.registry}/sessions/{session_id}", headers=headers) as r:
                    self._record(r.status, dict(r.headers), "read")


@pytest.fixture(name="servers")
def _servers(tmp_path: Path) -> AsyncIterator[dict[str, ServerProcess]]:
    servers = {"redis": start_redis(tmp_path / "redis", persist=True), "nats": start_nats(tmp_path / "nats")}
    yield servers
    for server in servers.values():
        server.stop()


async def _outage(
    aiohttp_server: AiohttpServer, servers: dict[str, ServerProcess], name: str, restart: Callable[[], ServerProcess]
) -> Load:
    async with running_desk(aiohttp_server, servers["redis"].url, servers["nats"].url) as desk:
        _, supervisor_key = await desk.account(Role.SUPERVISOR, "sup")
        load = Load(desk, supervisor_key)
        workers = [asyncio.create_task(load.worker(n)) for n in range(WORKERS)]
        try:
            await asyncio.wait_for(load.expect(RECOVERED_AFTER).wait(), 20)  # warmed up
            servers[name].stop()
            down_from = sum(load.answers.values())
            await asyncio.sleep(OUTAGE_S)  # the outage's length, not a wait for something
            servers[name] = restart()
            during = sum(load.answers.values()) - down_from
            await asyncio.wait_for(load.expect(RECOVERED_AFTER).wait(), 30)  # the same processes serve again
        finally:
            load.stop.set()
            await asyncio.gather(*workers)
        print(name, "outage:", load.answers, "answers while down:", during)
        assert not load.bad, f"unacceptable answers: {load.bad[:5]} of {load.answers}"
        if name == "redis":
            # A NATS outage this short may pass unseen: the client buffers while it reconnects, within the RPC timeout.
            assert load.answers[503] > 0, "the outage was not noticed"

        # Nothing half-done: the page retries a failed start with its Idempotency-Key (contract 9) and gets the
        # session the registry may have committed before the outage cut the reply; then exactly the sessions of
        # the starts exist, none behind a start nobody holds.
        async def retry(name: str) -> None:
            body = {"json": {"userName": name}, "headers": {"Idempotency-Key": name}}
            for _ in range(5):
                async with desk.http.post(f"{desk.token}/api/customer/start", **body) as response:
                    if response.status == 503:  # the retries arrive as one burst: the page waits as told, again
                        await asyncio.sleep(float(response.headers["Retry-After"]))
                        continue
                    assert response.status == 200, await response.text()
                    load.started[name] = (await response.json())["session_id"]
                    return
            raise AssertionError(f"the start {name} was still refused after 5 tries")

        await asyncio.gather(*(retry(name) for name in load.failed))
        # Every session the registry holds (its index; the read API pages at 1,000 and a quiet machine starts more).
        redis = Redis.from_url(servers["redis"].url, decode_responses=True)
        try:
            keys = Keyspaces.build("reg:", partitions=16, pin_bucket_drop=2)  # the registry's defaults
            held = {sid for key in keys.index_keys() for sid in await redis.zrange(key, 0, -1)}
        finally:
            await redis.aclose()
        assert held == set(load.started.values())
        return load


async def test_redis_down_for_two_seconds_under_load(servers, aiohttp_server, tmp_path) -> None:
    port = servers["redis"].port
    await _outage(aiohttp_server, servers, "redis", lambda: start_redis(tmp_path / "redis", port, persist=True))


async def test_nats_down_for_two_seconds_under_load(servers, aiohttp_server, tmp_path) -> None:
    port = servers["nats"].port
    await _outage(aiohttp_server, servers, "nats", lambda: start_nats(tmp_path / "nats", port))

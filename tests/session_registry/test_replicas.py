"""Replicas publish different partitions in parallel; a replica that dies has its partitions taken over.

One replica runs in this process, the other as a child process that the test kills mid-burst (SIGKILL: no lease
is handed over, they lapse).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import nats
import pytest

from devstack.servers import free_port
from devstack.stack import wait_until_ready

from .conftest import KEYS, EventLog, ev, every_partition, open_session
from .test_recovery import spawn_registry

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(60)]

SESSIONS = 40
ROUNDS = 12
KILL_AFTER = 4


async def lease_holders(redis) -> list[str | None]:
    return [await redis.get(key) for key in every_partition("lease")]


async def until(check, within_s: float) -> None:
    """Wait for another process's progress in Redis: there is no event to await across processes."""
    deadline = time.monotonic() + within_s
    while not await check():  # noqa: ASYNC110
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_two_replicas_share_the_partitions_and_a_killed_ones_are_taken_over(
    start_registry, nc: nats.aio.client.Client, events: EventLog, redis, redis_url: str, nats_url: str, tmp_path: Path
) -> None:
    port = free_port()
    other = spawn_registry(redis_url, nats_url, port, tmp_path / "registry.log")
    try:
        await asyncio.to_thread(wait_until_ready, f"http://127.0.0.1:{port}", lambda: other.poll() is not None, 20)
        here = await start_registry()

        async def both_publish() -> bool:
            return len({holder for holder in await lease_holders(redis) if holder}) == 2

        await until(both_publish, within_s=10)
        members = set(await redis.zrange(KEYS.replicas.key(KEYS.replicas.base(), "members"), 0, -1))
        assert set(await lease_holders(redis)) == members  # every partition leased, to one of the two

        sessions = [await open_session(nc, here) for _ in range(SESSIONS)]
        assert len({KEYS.partition_of(s.id) for s in sessions}) > 8  # both replicas' partitions among them
        for n in range(1, ROUNDS + 1):
            if n == KILL_AFTER:
                other.send_signal(signal.SIGKILL)
                other.wait()
            name = "agent_joined" if n % 2 else "agent_left"
            await asyncio.gather(*(s.beacon(ev(name, seq=n)) for s in sessions))

        for session in sessions:
            await events.wait(session.id, "agent_left", count=ROUNDS // 2, within_s=15)
        # The survivor holds every partition now, the dead replica's too.
        assert len(set(await lease_holders(redis))) == 1
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()

    for session in sessions:
        published = events.of(session.id)
        # Nothing lost, nothing twice, in order: one event per change, versions 1, 2, 3, ...
        assert [e.type for e in published] == ["created"] + ["agent_joined", "agent_left"] * (ROUNDS // 2)
        assert [e.session.version for e in published] == list(range(1, ROUNDS + 2))
    assert len(events.msg_ids) == len(set(events.msg_ids)) == SESSIONS * (ROUNDS + 1)

"""``REDIS_MODE=sentinel``: a service-level operation keeps working when the sentinels promote the replica.

The servers are the pip-shipped redis-server: a master, a replica of it, and three sentinels (``redis-server
<config> --sentinel``) that watch it and fail it over a second after it stops answering.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from devstack.servers import ServerProcess, find_binary, free_port, start_redis
from shared.accounts import AccountStore, Role
from shared.redis_conn import close_redis, redis_client

MASTER_NAME = "mymaster"


def start_sentinel(data_dir: Path, master_port: int) -> ServerProcess:
    """A sentinel watching the master at ``master_port`` (quorum 2, down after 1 s); its config file is its own."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "sentinel.conf"
    config.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                f"dir {data_dir}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2",
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
                f"sentinel failover-timeout {MASTER_NAME} 10000",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
                "",
            ]
        )
    )
    log_path = data_dir / "sentinel.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [find_binary("redis-server"), str(config), "--sentinel"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    sentinel = ServerProcess("redis", port, process, f"redis://127.0.0.1:{port}", log_path)
    sentinel.wait_ready()  # a sentinel answers PING like a server
    return sentinel


@dataclass
class SentinelSetup:
    master: ServerProcess
    replica: ServerProcess
    sentinels: list[ServerProcess]

    @property
    def url(self) -> str:
        """What ``REDIS_URL`` holds with ``REDIS_MODE=sentinel``: the sentinels."""
        return ",".join(sentinel.url for sentinel in self.sentinels)


@pytest.fixture(name="sentinel_setup")
def _sentinel_setup(tmp_path: Path) -> Iterator[SentinelSetup]:
    master = start_redis(tmp_path / "master")
    replica = start_redis(tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(master.port)))
    setup = SentinelSetup(master, replica, [])
    try:
        setup.sentinels = [start_sentinel(tmp_path / f"sentinel{i}", master.port) for i in range(3)]
        yield setup
    finally:
        for server in [*setup.sentinels, replica, master]:
            server.stop()


async def _until(check: Callable[[], Awaitable[bool]], events: Any, what: str, timeout_s: float = 30.0) -> None:
    """Until ``check()`` holds: re-checked at every sentinel event on ``events`` (or each half second), bounded."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():
                await events.get_message(ignore_subscribe_messages=True, timeout=0.5)
    except TimeoutError:
        raise AssertionError(f"sentinels: {what} within {timeout_s} s") from None


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_accounts_work_through_sentinels_before_and_after_a_failover(sentinel_setup: SentinelSetup) -> None:
    setup = sentinel_setup
    async with AsyncExitStack() as stack:
        sentinels = [Redis(port=s.port, decode_responses=True) for s in setup.sentinels]
        for sentinel in sentinels:
            stack.push_async_callback(sentinel.aclose)
        watcher = sentinels[0].pubsub()
        stack.push_async_callback(watcher.aclose)
        await watcher.psubscribe("*")  # every sentinel event: +sentinel, +slave, +sdown, +switch-master, ...

        async def all_know_each_other_and_the_replica() -> bool:
            for sentinel in sentinels:
                peers = await sentinel.execute_command("SENTINEL", "SENTINELS", MASTER_NAME)
                replicas = await sentinel.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
                if len(peers) < 2 or not replicas:
                    return False
            return True

        await _until(all_know_each_other_and_the_replica, watcher, "did not find each other and the replica")

        client = redis_client(setup.url, mode="sentinel", sentinel_master=MASTER_NAME)
        stack.push_async_callback(close_redis, client)
        store = AccountStore(client)
        before, before_key = await store.create("Ann", Role.AGENT)
        assert (await store.authenticate(before_key)).id == before.id
        master = Redis(port=setup.master.port)
        assert await master.wait(1, 5000) == 1  # the replica has the account before its master dies
        await master.aclose()

        setup.master.process.kill()
        setup.master.process.wait()

        async def every_sentinel_names_the_replica() -> bool:
            for sentinel in sentinels:
                state = await sentinel.execute_command("SENTINEL", "MASTER", MASTER_NAME)
                fields = dict(zip(state[::2], state[1::2], strict=True)) if isinstance(state, list) else state
                if int(fields["port"]) != setup.replica.port or fields["flags"] != "master":
                    return False
            return True

        await _until(every_sentinel_names_the_replica, watcher, "did not all promote the replica")

        # The same client, unchanged: its next connection goes to the master the sentinels name now.
        assert (await store.authenticate(before_key)).id == before.id
        after, after_key = await store.create("Bob", Role.SUPERVISOR)
        assert (await store.authenticate(after_key)).id == after.id
        assert {a.name for a in await store.list()} == {"Ann", "Bob"}

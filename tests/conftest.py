"""Fixtures every test shares: real Redis and NATS servers on free loopback ports, isolated per test.

The servers start once per test session from the venv's pip-installed binaries (never the machine's own
services). Each test gets an empty Redis database and a NATS server without streams.

Every log line of the run is kept; at the end the run fails if any line holds a secret (the test SDK secret or
anything shaped like an API key).
"""

from __future__ import annotations

import io
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from redis.asyncio import Redis

from devstack.servers import ServerProcess, start_nats, start_redis
from shared.logs import configure_logging

TEST_SDK_KEY = "test-sdk-key"
TEST_SDK_SECRET = "test-sdk-secret-never-logged-3f9a"
SECRET_MARKERS = (TEST_SDK_SECRET, "cbk_")

LOG_LINES: list[str] = []


class _KeepLines(io.TextIOBase):
    """Every log line of the run, also written to the current ``sys.stderr`` so pytest shows it on failure."""

    def write(self, text: str) -> int:
        LOG_LINES.append(text)
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def pytest_configure(config: pytest.Config) -> None:
    configure_logging("DEBUG", json=True, cache=False, stream=_KeepLines())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = [line for line in LOG_LINES if any(marker in line for marker in SECRET_MARKERS)]
    if leaks:
        print(f"\nSECRET LEAK: {len(leaks)} log lines hold a secret; first: {leaks[0][:300]}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", name="redis_server")
def _redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session", name="nats_server")
def _nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_nats(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(name="redis_url")
async def _redis_url(redis_server: ServerProcess) -> str:
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    await client.script_flush()
    await client.aclose()
    return redis_server.url


@pytest.fixture(name="nats_url")
async def _nats_url(nats_server: ServerProcess) -> str:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    for name in await js.streams_info():
        await js.delete_stream(name.config.name)
    await nc.close()
    return nats_server.url


@pytest.fixture(name="redis")
async def _redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(name="nc")
async def _nc(nats_url: str) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.drain()


@pytest.fixture(name="data_dir")
def _data_dir(tmp_path: Path) -> Path:
    return tmp_path

"""Fixtures every test shares: real Redis and NATS servers on free loopback ports, isolated per test.

The servers start once per test session from the venv's pip-installed binaries (never the machine's own
services). Each test gets an empty Redis database and a NATS server without streams.

Every log line of the run is kept, this process's and every child's (each ``*.log`` file under pytest's temporary
directory: the service processes of ``devstack.Stack`` and of single tests, the servers). At the end the run fails if
any line holds a credential: a configuration secret (the test SDK secret, every ``*SECRET*`` constant of a test
module, every secret handed to a child process in its environment) or anything shaped like an API key, a JWT or a
session token. A service process (``python -m <service>``) that exits with an error while its test runs fails that
test, and one found so at the end fails the run.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from redis.asyncio import Redis

from devstack.servers import RedisCluster, ServerProcess, start_nats, start_redis, start_redis_cluster
from shared.logs import configure_logging
from shared.redis_conn import RedisClient, redis_client

TEST_SDK_KEY = "test-sdk-key"
TEST_SDK_SECRET = "test-sdk-secret-never-logged-3f9a"
# Credentials by shape: an API key, a JWT (the SDK token), a session token ``v1.<session>.<signature>``.
CREDENTIAL_SHAPES = re.compile(
    r"cbk_[A-Za-z0-9_-]{6,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|\bv1\.[^.\s\"'\\]{1,128}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"
)
SERVICE_PACKAGES = frozenset({"token_service", "session_registry", "notification_service", "devstack.up"})

LOG_LINES: list[str] = []
CHILD_SECRETS: set[str] = set()
SERVICE_PROCESSES: list[subprocess.Popen[Any]] = []


class _KeepLines(io.TextIOBase):
    """Every log line of the run, also written to the current ``sys.stderr`` so pytest shows it on failure."""

    def write(self, text: str) -> int:
        LOG_LINES.append(text)
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _TrackedPopen(subprocess.Popen):  # type: ignore[type-arg]
    """``subprocess.Popen`` (asyncio's children included) noting service processes and the secrets children get."""

    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        super().__init__(args, *rest, **kwargs)
        env = kwargs.get("env") or {}
        CHILD_SECRETS.update(v for k, v in env.items() if "SECRET" in k.upper() and len(v) >= 8)
        argv = [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]
        if any(argv[i] == "-m" and argv[i + 1] in SERVICE_PACKAGES for i in range(len(argv) - 1)):
            SERVICE_PROCESSES.append(self)

    def wait(self, timeout: float | None = None) -> int:
        # Whoever waits for the exit (``subprocess.run``, a test's own stop) sees its status: not a silent death.
        returncode = super().wait(timeout)
        if self in SERVICE_PROCESSES:
            SERVICE_PROCESSES.remove(self)
        return returncode


def _crashed() -> list[str]:
    """Service processes that exited with an error nobody waited for, each reported once."""
    found = []
    for process in list(SERVICE_PROCESSES):
        if process.poll() is not None:
            SERVICE_PROCESSES.remove(process)
            if process.returncode > 0:
                found.append(f"{' '.join(map(str, process.args))} exited with {process.returncode}")  # type: ignore[arg-type]
    return found


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--topology",
        choices=("standalone", "cluster"),
        default="standalone",
        help="Redis the tests run on: one server, or a 3-master Redis Cluster (then only tests marked `cluster` run)",
    )


def pytest_configure(config: pytest.Config) -> None:
    configure_logging("DEBUG", json=True, cache=False, stream=_KeepLines())
    subprocess.Popen = _TrackedPopen  # type: ignore[misc]
    if config.getoption("topology") == "cluster":
        # Every service built in this process, and every child process, reads it (shared.settings).
        os.environ["REDIS_MODE"] = "cluster"
        # redis-py's cluster client leaves some connections to be closed by the garbage collector (those of a node
        # it dropped from its slot map, e.g. after a failover), whose ResourceWarning then fails whichever test is
        # running. The standalone run keeps ResourceWarnings errors, so a leak of ours still fails there.
        config.addinivalue_line("filterwarnings", "ignore::ResourceWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("topology") != "cluster":
        return
    deselected = [item for item in items if item.get_closest_marker("cluster") is None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("cluster") is not None]


def cluster_topology(config: pytest.Config) -> bool:
    return bool(config.getoption("topology") == "cluster")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    result = yield
    crashed = _crashed()
    if crashed:
        pytest.fail("a service process died during the test: " + "; ".join(crashed), pytrace=False)
    return result


def _secret_markers() -> set[str]:
    markers = {TEST_SDK_SECRET, *CHILD_SECRETS}
    for name, module in list(sys.modules.items()):
        if name == "tests" or name.startswith("tests."):
            markers.update(
                value
                for key, value in vars(module).items()
                if "SECRET" in key and isinstance(value, str) and len(value) >= 8
            )
    return markers


def _leaks(lines: Iterator[str], markers: set[str]) -> Iterator[str]:
    for line in lines:
        if CREDENTIAL_SHAPES.search(line) or any(marker in line for marker in markers):
            yield line


def _child_log_lines(session: pytest.Session) -> Iterator[str]:
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    for path in sorted(base.rglob("*.log")):
        yield from path.read_text(errors="replace").splitlines()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    markers = _secret_markers()
    leaks = [*_leaks(iter(LOG_LINES), markers), *_leaks(_child_log_lines(session), markers)]
    if leaks:
        print(f"\nSECRET LEAK: {len(leaks)} log lines hold a credential; first: {leaks[0][:300]}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    crashed = _crashed()
    if crashed:
        print("\nSERVICE CRASH: " + "; ".join(crashed))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", name="redis_server")
def _redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session", name="redis_cluster")
def _redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """3 masters with a replica each, from the pip-shipped redis-server (``--topology=cluster``)."""
    cluster = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session", name="nats_server")
def _nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_nats(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(name="redis_url")
async def _redis_url(request: pytest.FixtureRequest) -> str:
    """An empty Redis: one server, or with ``--topology=cluster`` the seed URLs of an empty Redis Cluster."""
    if cluster_topology(request.config):
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        for master in cluster.masters():
            client = Redis.from_url(master.url)
            await client.flushall()
            await client.script_flush()
            await client.aclose()
        return cluster.url
    server: ServerProcess = request.getfixturevalue("redis_server")
    client = Redis.from_url(server.url)
    await client.flushdb()
    await client.script_flush()
    await client.aclose()
    return server.url


@pytest.fixture(name="nats_url")
async def _nats_url(nats_server: ServerProcess) -> str:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    for name in await js.streams_info():
        await js.delete_stream(name.config.name)
    await nc.close()
    return nats_server.url


@pytest.fixture(name="redis")
async def _redis(redis_url: str) -> AsyncIterator[RedisClient]:
    """A client of the test's Redis in the run's topology (``REDIS_MODE``), decoding replies to ``str``."""
    client = redis_client(redis_url, mode=os.environ.get("REDIS_MODE", "standalone"))
    await client.ping()  # a cluster client loads its slot map (see redis_client)
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

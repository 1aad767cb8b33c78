"""The fuzz suite's one running stack, on Redis and NATS servers of its own, for the whole package.

Its own servers, not the session's: a test elsewhere that leaves a subscriber behind on the shared NATS (an app
whose loop closed before its cleanup) would otherwise take a share of the stack's queue-group requests and never
answer them. Package scope: the servers and the services stop before other packages' tests run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession

from devstack.servers import start_nats, start_redis
from tests.fuzz.stack import EXAMPLES, Stack, serve


@pytest.fixture(scope="package", name="stack")
def _stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis = start_redis(tmp_path_factory.mktemp("fuzz-redis"))
    try:
        nats = start_nats(tmp_path_factory.mktemp("fuzz-nats"))
        try:
            yield from serve(redis.url, nats.url)
        finally:
            nats.stop()
    finally:
        redis.stop()


@pytest.fixture(scope="package", name="http")
def _http(stack: Stack) -> Iterator[ClientSession]:
    """An aiohttp client session on the stack's loop, for WebSocket and streaming clients (``stack.run``)."""

    async def open_session() -> ClientSession:
        return ClientSession()

    client = stack.run(open_session())
    yield client
    stack.run(client.close())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A property runs FUZZ_EXAMPLES requests: more time than the suite's per-test default, growing with the count.
    limit = max(120, EXAMPLES)
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(limit))
            # Python 3.11's AST constructor keeps one recursion counter per interpreter; with the services running
            # in a thread it can come out "mismatched" when pytest parses test sources to draw a failure, which
            # aborts the whole run (INTERNALERROR, pytest-dev/pytest#10874). Native tracebacks need no AST.
            item.repr_failure = _native_repr  # type: ignore[method-assign]


def _native_repr(excinfo: pytest.ExceptionInfo[BaseException]) -> str | object:
    return excinfo.getrepr(style="native")

"""The fuzz suite's one running stack: started once for the package, stopped before other packages' tests run.

The stack's services answer NATS requests and consume JetStream, so it must not outlive this package: other tests
flush the same Redis and NATS and would find a stray registry or consumer there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import ClientSession

from devstack.servers import ServerProcess
from tests.fuzz.stack import Stack, serve


@pytest.fixture(scope="package", name="stack")
def _stack(redis_server: ServerProcess, nats_server: ServerProcess) -> Iterator[Stack]:
    yield from serve(redis_server.url, nats_server.url)


@pytest.fixture(scope="package", name="http")
def _http(stack: Stack) -> Iterator[ClientSession]:
    """An aiohttp client session on the stack's loop, for WebSocket and streaming clients (``stack.run``)."""

    async def open_session() -> ClientSession:
        return ClientSession()

    client = stack.run(open_session())
    yield client
    stack.run(client.close())

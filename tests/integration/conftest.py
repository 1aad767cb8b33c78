from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.conftest import TEST_SDK_KEY, TEST_SDK_SECRET

STACK_ENV = {
    "ZOOM_SDK_KEY": TEST_SDK_KEY,
    "ZOOM_SDK_SECRET": TEST_SDK_SECRET,
    "ZOOM_SIMULATED": "true",
    "LOG_LEVEL": "INFO",
}


@pytest.fixture(name="stack")
def _stack(tmp_path: Path, redis_url: str, nats_url: str) -> Iterator[Stack]:
    """The three services as real processes (``python -m ...``) against the test Redis and NATS."""
    stack = Stack.start(tmp_path, redis_url=redis_url, nats_url=nats_url, env=STACK_ENV)
    yield stack
    stack.stop()

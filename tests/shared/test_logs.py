from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.contextvars import bound_contextvars

from shared.logs import configure_logging
from tests.conftest import _KeepLines


@pytest.fixture(name="lines")
def _lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("INFO", json=True, cache=False, stream=out)
    yield out
    configure_logging("DEBUG", json=True, cache=False, stream=_KeepLines())


def _records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_structlog_and_stdlib_records_share_one_json_shape(lines: io.StringIO) -> None:
    with bound_contextvars(request_id="r1"):
        structlog.get_logger().info("session_registered", session_id="s1")
        logging.getLogger("nats").warning("reconnecting to %s", "nats://x")
    structlog.get_logger().debug("filtered_out")
    own, foreign = _records(lines)
    assert own["event"] == "session_registered" and own["session_id"] == "s1" and own["request_id"] == "r1"
    assert foreign["event"] == "reconnecting to nats://x" and foreign["logger"] == "nats"
    assert {"level", "timestamp"} <= own.keys() & foreign.keys()


def test_tracebacks_never_carry_local_variables(lines: io.StringIO) -> None:
    def fail(api_key: str) -> None:
        raise RuntimeError("boom")

    try:
        fail("cbk_local_value_must_not_appear")
    except RuntimeError:
        structlog.get_logger().exception("request_failed")
    (record,) = _records(lines)
    assert record["exception"][0]["exc_type"] == "RuntimeError"  # type: ignore[index]
    assert "cbk_local_value" not in lines.getvalue()

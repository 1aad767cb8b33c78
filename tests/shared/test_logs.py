from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import structlog
from structlog.contextvars import bound_contextvars

from shared.logs import configure_logging, redact
from tests.conftest import CREDENTIAL_SHAPES, _crashed, _KeepLines, _leaks


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


SESSION_TOKEN = "v1.0123456789abcdef0123456789abcdef." + "S" * 43
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjdXN0b21lciJ9.c2lnbmF0dXJlLXZhbHVl"
API_KEY = "cbk_" + "A" * 43


@pytest.mark.parametrize(
    "credential",
    [API_KEY, f"Bearer {API_KEY}", f"Bearer opaque-{'x' * 20}", "Basic dXNlcjpwYXNzd29yZA==", JWT, SESSION_TOKEN],
)
def test_no_credential_reaches_a_log_line_whatever_its_route(lines: io.StringIO, credential: str) -> None:
    structlog.get_logger().info("echo", header=f"Authorization: {credential}")
    logging.getLogger("aiohttp.server").error("Bad header %r", f"x: {credential}\x01".encode())
    try:
        raise ValueError(f"bad value {credential}")
    except ValueError:
        structlog.get_logger().exception("failed")
    secret_part = credential.split()[-1][8:]
    assert len(lines.getvalue().splitlines()) == 3
    assert secret_part not in lines.getvalue()
    assert not CREDENTIAL_SHAPES.search(lines.getvalue())


def test_configured_secret_values_are_masked(lines: io.StringIO) -> None:
    configure_logging("INFO", json=True, cache=False, stream=lines, secrets=["webhook-secret-value", "short"])
    structlog.get_logger().info("oops", detail="signed with webhook-secret-value", word="short")
    (record,) = _records(lines)
    assert record["detail"] == "signed with ***" and record["word"] == "short"
    assert redact("a session token " + SESSION_TOKEN).endswith("v1.0123456789abcdef0123456789abcdef.***")


def test_a_client_hanging_up_is_logged_at_info_without_a_traceback(lines: io.StringIO) -> None:
    for exc in (ConnectionResetError("Connection lost"), asyncio.CancelledError()):
        try:
            raise exc
        except BaseException as caught:
            logging.getLogger("aiohttp.server").error("Error handling request", exc_info=caught)
    records = _records(lines)
    assert [r["level"] for r in records] == ["info", "info"]
    assert all("exception" not in r for r in records)


def test_the_leak_check_knows_every_credential_shape() -> None:
    for credential in (API_KEY, JWT, SESSION_TOKEN):
        assert list(_leaks(iter([f'{{"event": "x", "v": "{credential}"}}']), set()))
    assert list(_leaks(iter(["config webhook-secret-value"]), {"webhook-secret-value"}))
    assert not list(_leaks(iter([redact(f"{API_KEY} {JWT} {SESSION_TOKEN}")]), set()))


def test_a_service_process_that_dies_unwatched_is_reported(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if "SECRET" not in k}
    process = subprocess.Popen(  # no SESSION_TOKEN_SECRET: the registry exits 2 at start
        [sys.executable, "-m", "session_registry"], env=env, cwd=tmp_path, stderr=subprocess.DEVNULL
    )
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # until it exits, leaving its status to poll()
    assert [report for report in _crashed() if "session_registry exited with 2" in report]
    assert _crashed() == []  # reported once

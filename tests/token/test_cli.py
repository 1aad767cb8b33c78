"""The accounts CLI, run in-process with ``main([...])`` against the test Redis."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import nats
import pytest
from redis.asyncio import Redis

from shared.accounts import AccountStore, Role
from shared.errors import Unauthorized
from shared.messaging import ACCOUNTS_REVOKED, AccountRevoked, RevocationReason
from shared.redis_conn import redis_client
from token_service.cli import _parser, main

pytestmark = pytest.mark.cluster  # the CLI takes REDIS_MODE from the environment, as the services do

KEY = re.compile(r"cbk_[\w-]+")


def _run(
    capsys: pytest.CaptureFixture[str], redis_url: str, *args: str, nats_url: str = "nats://127.0.0.1:1"
) -> tuple[int, str, str]:
    code = main(["--redis-url", redis_url, "--nats-url", nats_url, *args])
    out, err = capsys.readouterr()
    return code, out, err


# The CLI runs its own event loop (asyncio.run), so these tests are synchronous; the store checks use a fresh loop.
def _authenticate(redis_url: str, key: str) -> str:
    async def check() -> str:
        redis = redis_client(redis_url, mode=os.environ.get("REDIS_MODE", "standalone"))
        try:
            return (await AccountStore(redis).authenticate(key)).id
        finally:
            await redis.aclose()

    return asyncio.run(check())


def test_add_list_disable_enable_rotate(capsys: pytest.CaptureFixture[str], redis_url: str) -> None:
    code, out, _ = _run(capsys, redis_url, "add", "Ann Lee", "--role", "supervisor")
    assert code == 0
    account_id = re.search(r"with id (\w+)", out).group(1)  # type: ignore[union-attr]
    [key] = KEY.findall(out)
    assert _authenticate(redis_url, key) == account_id

    code, out, _ = _run(capsys, redis_url, "list")
    assert code == 0 and account_id in out and "supervisor" in out and "Ann Lee" in out
    assert "cbk_" not in out

    code, out, err = _run(capsys, redis_url, "disable", account_id)
    assert code == 0 and out.split()[2] == "disabled"
    assert "warning: could not notify" in err and "NOTIFY_ACCOUNT_RECHECK_S" in err  # no NATS at port 1
    code, out, err = _run(capsys, redis_url, "enable", account_id)
    assert code == 0 and out.split()[2] == "enabled" and "warning" not in err

    code, out, _ = _run(capsys, redis_url, "rotate", account_id)
    [new_key] = KEY.findall(out)
    assert new_key != key and _authenticate(redis_url, new_key) == account_id
    with pytest.raises(Unauthorized):
        _authenticate(redis_url, key)


def test_unknown_account_is_an_error(capsys: pytest.CaptureFixture[str], redis_url: str) -> None:
    code, _, err = _run(capsys, redis_url, "disable", "nope")
    assert code == 1 and "no account nope" in err


def test_empty_list_says_how_to_start(capsys: pytest.CaptureFixture[str], redis_url: str) -> None:
    assert "cobrowse-accounts add" in _run(capsys, redis_url, "list")[1]


def test_bad_role_is_refused(capsys: pytest.CaptureFixture[str], redis_url: str) -> None:
    with pytest.raises(SystemExit) as exc_info:
        main(["--redis-url", redis_url, "add", "X", "--role", "root"])
    assert exc_info.value.code == 2


def test_unreachable_redis_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "redis://:hunter2@127.0.0.1:1/0", "list")
    assert code == 1 and "cannot use Redis" in err and "hunter2" not in err


@pytest.mark.parametrize(
    ("command", "reason"), [("disable", RevocationReason.DISABLED), ("rotate", RevocationReason.ROTATED)]
)
async def test_disable_and_rotate_publish_the_revocation(
    redis: Redis, redis_url: str, nats_url: str, nc: nats.aio.client.Client, command: str, reason: RevocationReason
) -> None:
    account, _ = await AccountStore(redis).create("Eve", Role.AGENT)
    received: asyncio.Queue[AccountRevoked] = asyncio.Queue()

    async def on_revoked(msg: nats.aio.msg.Msg) -> None:
        await received.put(AccountRevoked.model_validate_json(msg.data))

    await nc.subscribe(ACCOUNTS_REVOKED, cb=on_revoked)
    await nc.flush()
    argv = ["--redis-url", redis_url, "--nats-url", nats_url, command, account.id]
    assert await asyncio.to_thread(main, argv) == 0  # the CLI runs its own event loop
    assert await asyncio.wait_for(received.get(), timeout=2) == AccountRevoked(account_id=account.id, reason=reason)


def test_migrate_says_how_many_accounts_it_copied(capsys: pytest.CaptureFixture[str], redis_url: str) -> None:
    code, out, _ = _run(capsys, redis_url, "migrate")
    assert code == 0 and "copied 0 accounts" in out


def test_redis_topology_comes_from_the_environment_then_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_MODE", raising=False)
    monkeypatch.delenv("REDIS_SENTINEL_MASTER", raising=False)
    assert _parser().parse_args(["list"]).redis_mode == "standalone"
    (tmp_path / ".env").write_text("REDIS_MODE=sentinel\nREDIS_SENTINEL_MASTER=desk\n")
    args = _parser().parse_args(["list"])
    assert (args.redis_mode, args.redis_sentinel_master) == ("sentinel", "desk")
    monkeypatch.setenv("REDIS_MODE", "cluster")
    assert _parser().parse_args(["list"]).redis_mode == "cluster"

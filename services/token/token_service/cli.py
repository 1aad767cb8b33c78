"""``cobrowse-accounts`` (or ``python -m token_service.cli``): manage staff accounts and their API keys.

::

    cobrowse-accounts add "Ann Lee" --role agent     # prints the new API key once
    cobrowse-accounts list
    cobrowse-accounts disable ID | enable ID
    cobrowse-accounts rotate ID                      # new key, printed once; the old one stops working
    cobrowse-accounts migrate                        # once, after upgrading: accounts of the old key layout

Uses the Redis at ``REDIS_URL`` (or ``--redis-url``) in the topology ``REDIS_MODE`` names (``--redis-mode``:
standalone, cluster with seed URLs, or sentinel with ``REDIS_SENTINEL_MASTER``), read from the environment or
``./.env`` as the services read them. Keys are printed to stdout only, never logged.

``disable`` and ``rotate`` then publish ``AccountRevoked`` on NATS (``NATS_URL`` or ``--nats-url``), so every
notification replica closes the account's open sockets and streams within a second. If NATS cannot be reached the
change in Redis still happens (new requests are refused at once) and a warning says that open connections close
only at their next periodic re-check (``NOTIFY_ACCOUNT_RECHECK_S``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import nats
from dotenv import dotenv_values
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from redis.exceptions import RedisClusterException, RedisError

from shared.accounts import Account, AccountStore, Role, publish_revocation
from shared.errors import CobrowseError
from shared.messaging import RevocationReason
from shared.redis_conn import redis_client
from shared.settings import redact_url

__all__ = ["main"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS_TIMEOUT_S = 2
RUN_URLS = Path(".run/urls.env")  # written by a running `make up` (devstack.runinfo): the servers it uses


def _default_url(name: str, fallback: str) -> str:
    return os.environ.get(name) or dotenv_values(RUN_URLS).get(name) or fallback


def _default_setting(name: str, fallback: str) -> str:
    """A setting the way the services read it: the environment, then ``./.env``."""
    return os.environ.get(name) or dotenv_values(".env").get(name) or fallback


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cobrowse-accounts",
        description="Manage cobrowse-desk staff accounts (agents, supervisors, admins) and their API keys.",
    )
    parser.add_argument(
        "--redis-url",
        default=_default_url("REDIS_URL", DEFAULT_REDIS_URL),
        help=f"Redis URL (default: $REDIS_URL, else make up's in {RUN_URLS}, else {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--redis-mode",
        choices=["standalone", "cluster", "sentinel"],
        default=_default_setting("REDIS_MODE", "standalone"),
        help="Redis topology (default: $REDIS_MODE, else ./.env's, else standalone)",
    )
    parser.add_argument(
        "--redis-sentinel-master",
        default=_default_setting("REDIS_SENTINEL_MASTER", "mymaster"),
        help="with --redis-mode sentinel: the master's name (default: $REDIS_SENTINEL_MASTER, else mymaster)",
    )
    parser.add_argument(
        "--nats-url",
        default=_default_url("NATS_URL", DEFAULT_NATS_URL),
        help=f"NATS URL for revocation notices (default: $NATS_URL, else make up's in {RUN_URLS}, else the local one)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = commands.add_parser("add", help="create an account and print its API key once")
    add.add_argument("name", help="display name (shown to customers as the agent's name)")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.AGENT.value)
    commands.add_parser("list", help="list every account")
    for name, text in [
        ("disable", "disable an account (its key stops working at once)"),
        ("enable", "enable a disabled account"),
        ("rotate", "replace an account's API key and print the new one once"),
    ]:
        commands.add_parser(name, help=text).add_argument("id", help="account id (see `list`)")
    commands.add_parser("migrate", help="copy the accounts of the old key layout (acct:<id>, no hash tag) to today's")
    return parser


def _line(account: Account) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(account.created_at))
    status = "disabled" if account.disabled else "enabled"
    return f"{account.id}  {account.role.value:<10}  {status:<8}  {created}  {account.name}"


def _show_key(api_key: str) -> None:
    print(f"API key (shown once; store it now): {api_key}")


async def _run(args: argparse.Namespace) -> None:
    redis = redis_client(args.redis_url, mode=args.redis_mode, sentinel_master=args.redis_sentinel_master)
    try:
        await redis.ping()  # a cluster client loads its slot map first
        store = AccountStore(redis)
        if args.command == "add":
            name = args.name.strip()
            if not name:
                raise CobrowseError("the name must not be empty", code="bad_name", status=400)
            account, api_key = await store.create(name, Role(args.role))
            print(f"created {account.role.value} {account.name!r} with id {account.id}")
            _show_key(api_key)
        elif args.command == "list":
            accounts = await store.list()
            if not accounts:
                print("no accounts yet; create one with: cobrowse-accounts add NAME --role agent")
            for account in accounts:
                print(_line(account))
        elif args.command in ("disable", "enable"):
            account = await store.set_disabled(args.id, args.command == "disable")
            print(_line(account))
            if account.disabled:
                await _announce(args.nats_url, account.id, RevocationReason.DISABLED)
        elif args.command == "rotate":
            api_key = await store.rotate(args.id)
            print(f"rotated the key of {args.id}; the old key no longer works")
            _show_key(api_key)
            await _announce(args.nats_url, args.id, RevocationReason.ROTATED)
        elif args.command == "migrate":
            print(f"copied {await store.migrate_legacy()} accounts of the old key layout")
    finally:
        await redis.aclose()


async def _announce(nats_url: str, account_id: str, reason: RevocationReason) -> None:
    """Tell every replica to close what the account has open; a warning (not a failure) if NATS is unreachable."""

    async def quiet(exc: Exception) -> None:  # the outcome is reported below, once
        pass

    nc: NatsClient | None = None
    try:
        servers = [s.strip() for s in nats_url.split(",") if s.strip()]
        async with asyncio.timeout(NATS_TIMEOUT_S):
            # nats-py retries a first connection forever with max_reconnect_attempts=0; one retry is enough here.
            nc = await nats.connect(
                servers=servers,
                name="cobrowse-accounts",
                connect_timeout=NATS_TIMEOUT_S,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                allow_reconnect=False,
                error_cb=quiet,
            )
            await publish_revocation(nc, account_id, reason, timeout_s=NATS_TIMEOUT_S)
        print(f"open connections of {account_id} are being closed ({reason.value})")
    except (NatsError, OSError, TimeoutError) as exc:
        print(
            f"warning: could not notify the services over NATS at {redact_url(nats_url)} ({type(exc).__name__}); "
            "the change is saved and new requests are refused, but sockets and streams already open close only at "
            "their next account re-check (NOTIFY_ACCOUNT_RECHECK_S, 15 s by default)",
            file=sys.stderr,
        )
    finally:
        if nc is not None and not nc.is_closed:
            await nc.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_run(args))
    except CobrowseError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except (RedisError, RedisClusterException, OSError) as exc:
        print(f"error: cannot use Redis at {redact_url(args.redis_url)}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

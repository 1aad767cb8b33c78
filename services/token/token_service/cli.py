"""``cobrowse-accounts`` (or ``python -m token_service.cli``): manage staff accounts and their API keys.

::

    cobrowse-accounts add "Ann Lee" --role agent     # prints the new API key once
    cobrowse-accounts list
    cobrowse-accounts disable ID | enable ID
    cobrowse-accounts rotate ID                      # new key, printed once; the old one stops working

Uses the Redis at ``REDIS_URL`` (or ``--redis-url``). Keys are printed to stdout only, never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from dotenv import dotenv_values
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.accounts import Account, AccountStore, Role
from shared.errors import CobrowseError
from shared.settings import redact_url

__all__ = ["main"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
RUN_URLS = Path(".run/urls.env")  # written by a running `make up` (devstack.runinfo): the Redis it uses


def _default_redis_url() -> str:
    return os.environ.get("REDIS_URL") or dotenv_values(RUN_URLS).get("REDIS_URL") or DEFAULT_REDIS_URL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cobrowse-accounts",
        description="Manage cobrowse-desk staff accounts (agents, supervisors, admins) and their API keys.",
    )
    parser.add_argument(
        "--redis-url",
        default=_default_redis_url(),
        help=f"Redis URL (default: $REDIS_URL, else make up's in {RUN_URLS}, else {DEFAULT_REDIS_URL})",
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
    return parser


def _line(account: Account) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(account.created_at))
    status = "disabled" if account.disabled else "enabled"
    return f"{account.id}  {account.role.value:<10}  {status:<8}  {created}  {account.name}"


def _show_key(api_key: str) -> None:
    print(f"API key (shown once; store it now): {api_key}")


async def _run(args: argparse.Namespace) -> None:
    redis = Redis.from_url(args.redis_url, decode_responses=True)
    try:
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
        elif args.command == "rotate":
            api_key = await store.rotate(args.id)
            print(f"rotated the key of {args.id}; the old key no longer works")
            _show_key(api_key)
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_run(args))
    except CobrowseError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"error: cannot use Redis at {redact_url(args.redis_url)}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make up``: run the whole system locally until Ctrl-C, leaving no process behind.

Uses the Redis and NATS at ``REDIS_URL`` / ``NATS_URL`` when they answer; otherwise starts real servers from the
pip-installed binaries, with data (Redis AOF, JetStream store) under ``.run/``. Without Zoom credentials it runs
with development credentials and a simulated Zoom SDK, and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from dotenv import dotenv_values

from shared.accounts import Role

from .servers import url_answers
from .stack import SERVICES, Stack

BANNER_WIDTH = 78


def _reachable(url: str | None, default_port: int) -> bool:
    if not url:
        return False
    first = urlsplit(url.split(",")[0].strip())
    return url_answers(first.hostname or "127.0.0.1", first.port or default_port)


def _dev_secrets(run_dir: Path) -> dict[str, str]:
    """Secrets that must survive a restart of the dev stack (session tokens in open pages stay valid)."""
    path = run_dir / "dev-secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    created = {
        "SESSION_TOKEN_SECRET": secrets.token_urlsafe(32),
        "ZOOM_WEBHOOK_SECRET_TOKEN": secrets.token_urlsafe(24),
    }
    path.write_text(json.dumps(created))
    path.chmod(0o600)
    return created


async def _dev_accounts(stack: Stack, run_dir: Path) -> dict[str, str]:
    """Demo staff accounts, created on the first run; their keys are kept in .run/ (development only)."""
    path = run_dir / "dev-accounts.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    keys = {
        "agent (Alex)": await stack.create_account("Alex", Role.AGENT),
        "agent (Sam)": await stack.create_account("Sam", Role.AGENT),
        "supervisor (Kim)": await stack.create_account("Kim", Role.SUPERVISOR),
    }
    path.write_text(json.dumps(keys, indent=2))
    path.chmod(0o600)
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make up", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--run-dir", type=Path, default=Path(".run"), help="data and logs (default: .run)")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)

    # The services read .env themselves, but the launcher decides from the same values (which servers to use,
    # whether real Zoom credentials exist), so it reads it too; the environment wins, as for the services.
    from_file = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    configured = {**from_file, **os.environ}
    redis_url = configured.get("REDIS_URL")
    nats_url = configured.get("NATS_URL")
    redis_url = redis_url if _reachable(redis_url, 6379) else None
    nats_url = nats_url if _reachable(nats_url, 4222) else None
    ports = {name: int(configured.get(spec.port_env, spec.default_port)) for name, spec in SERVICES.items()}
    env = {**{k: v for k, v in _dev_secrets(run_dir).items() if not configured.get(k)}, **from_file}

    print("Starting cobrowse-desk ...", flush=True)
    stack = Stack.start(run_dir, redis_url=redis_url, nats_url=nats_url, ports=ports, env=env, persist=True)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        accounts = asyncio.run(_dev_accounts(stack, run_dir))
        _print_summary(stack, redis_url, nats_url, accounts)
        while not (dead := [name for name, s in stack.services.items() if s.process.poll() is not None]):
            time.sleep(0.5)
        print(f"\nService stopped unexpectedly: {', '.join(dead)}; see {run_dir}/logs/. Shutting down.", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    finally:
        stack.stop()
        print("Stopped; no process left running.", flush=True)


def _print_summary(stack: Stack, redis_url: str | None, nats_url: str | None, accounts: dict[str, str]) -> None:
    line = "=" * BANNER_WIDTH
    print(line)
    if stack.env.get("ZOOM_SIMULATED") == "true":
        print("DEVELOPMENT CREDENTIALS: ZOOM_SDK_KEY/ZOOM_SDK_SECRET are not set, so tokens are signed with a")
        print("throw-away dev secret and the pages use a SIMULATED Zoom SDK and agent desk. Set both (e.g. in")
        print(".env) to talk to the real Zoom Cobrowse service.")
        print(line)
    print(f"Redis : {'yours at REDIS_URL' if redis_url else 'started here, data in .run/redis'}")
    print(f"NATS  : {'yours at NATS_URL' if nats_url else 'started here (JetStream), data in .run/nats'}")
    for name, url in stack.urls.items():
        print(f"{name:<13}: {url}   (/healthz /readyz /metrics)")
    print(line)
    print(f"Customer demo        : {stack.urls['token']}/demo")
    print(f"Agent console        : {stack.urls['notification']}/agent")
    print(f"Supervisor dashboard : {stack.urls['notification']}/dashboard")
    print(f"Beacon script        : {stack.urls['registry']}/beacon.js")
    print(line)
    print("Development API keys (kept in .run/dev-accounts.json; manage accounts with cobrowse-accounts):")
    for label, key in accounts.items():
        print(f"  {label:<17} {key}")
    print(line)
    print(f"Logs in {stack.data_dir}/logs/. Press Ctrl-C to stop everything.", flush=True)


if __name__ == "__main__":
    sys.exit(main())

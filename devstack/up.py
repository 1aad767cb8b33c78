"""``make up``: run the whole system locally until Ctrl-C, leaving no process behind.

Uses the Redis and NATS at ``REDIS_URL`` / ``NATS_URL`` when they answer; otherwise starts real servers from the
pip-installed binaries, with data (Redis AOF, JetStream store) under ``.run/``. Without Zoom credentials it runs
with development credentials and a simulated Zoom SDK, and says so. A service port already in use (another
``make up``?) stops it before anything starts or prints. While it runs, ``.run/urls.env`` says where everything is
(see ``devstack.runinfo``).
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

from shared.accounts import Role
from shared.settings import redact_url

from .runinfo import ACCOUNTS_FILE, SIMULATOR_LABEL, dotenv, remove_urls, write_urls
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


DEV_ACCOUNTS = {
    "agent (Alex)": ("Alex", Role.AGENT),
    "agent (Sam)": ("Sam", Role.AGENT),
    "supervisor (Kim)": ("Kim", Role.SUPERVISOR),
    # `make demo`'s agents: never a key printed for a person (a second sign-in would replace that person's console).
    f"{SIMULATOR_LABEL} agent 1": ("Sim agent 1", Role.AGENT),
    f"{SIMULATOR_LABEL} agent 2": ("Sim agent 2", Role.AGENT),
}


async def _dev_accounts(stack: Stack, run_dir: Path) -> dict[str, str]:
    """Demo staff accounts, created when missing; their keys are kept in .run/ (development only)."""
    path = run_dir / ACCOUNTS_FILE
    keys: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = {label: spec for label, spec in DEV_ACCOUNTS.items() if label not in keys}
    for label, (name, role) in missing.items():
        keys[label] = await stack.create_account(name, role)
    if missing:
        path.write_text(json.dumps(keys, indent=2))
        path.chmod(0o600)
    return keys


def _busy_ports(ports: dict[str, int]) -> list[str]:
    return [
        f"port {port} ({SERVICES[name].port_env}, the {name} service) is already in use"
        for name, port in ports.items()
        if url_answers("127.0.0.1", port)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make up", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--run-dir", type=Path, default=Path(".run"), help="data and logs (default: .run)")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)

    # The services read .env themselves, but the launcher decides from the same values (which servers to use,
    # whether real Zoom credentials exist), so it reads it too; the environment wins, as for the services.
    from_file = dotenv()
    settings = {**from_file, **os.environ}
    ports = {name: int(settings.get(spec.port_env, spec.default_port)) for name, spec in SERVICES.items()}
    if busy := _busy_ports(ports):
        print("cannot start cobrowse-desk: " + "; ".join(busy) + ".", file=sys.stderr)
        print("Is `make up` already running? Stop it, or choose free ports (e.g. TOKEN_PORT=9080).", file=sys.stderr)
        return 2
    redis_url = settings.get("REDIS_URL")
    nats_url = settings.get("NATS_URL")
    redis_url = redis_url if _reachable(redis_url, 6379) else None
    nats_url = nats_url if _reachable(nats_url, 4222) else None
    env = {**{k: v for k, v in _dev_secrets(run_dir).items() if not settings.get(k)}, **from_file}

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
        urls = {"REDIS_URL": stack.redis_url, "NATS_URL": stack.nats_url}
        urls |= {f"{SERVICES[name].port_env.removesuffix('_PORT')}_URL": url for name, url in stack.urls.items()}
        write_urls(run_dir, urls)
        _print_summary(stack, redis_url, nats_url, accounts)
        while not (dead := [name for name, s in stack.services.items() if s.process.poll() is not None]):
            time.sleep(0.5)
        print(f"\nService stopped unexpectedly: {', '.join(dead)}; see {run_dir}/logs/. Shutting down.", flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    finally:
        remove_urls(run_dir)
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
    redis_where = "yours at REDIS_URL" if redis_url else f"started here, data in {stack.data_dir}/redis"
    nats_where = "yours at NATS_URL" if nats_url else f"started here (JetStream), data in {stack.data_dir}/nats"
    print(f"Redis : {redact_url(stack.redis_url)}   ({redis_where})")
    print(f"NATS  : {redact_url(stack.nats_url)}   ({nats_where})")
    print(f"These URLs are in {stack.data_dir}/urls.env while this runs; cobrowse-accounts and make demo use them.")
    for name, url in stack.urls.items():
        print(f"{name:<13}: {url}   (/healthz /readyz /metrics)")
    print(line)
    print(f"Customer demo        : {stack.urls['token']}/demo")
    print(f"Agent console        : {stack.urls['notification']}/agent")
    print(f"Supervisor dashboard : {stack.urls['notification']}/dashboard")
    print(f"Beacon script        : {stack.urls['registry']}/beacon.js")
    print(line)
    print(f"Development API keys (kept in {stack.data_dir}/{ACCOUNTS_FILE}; manage accounts with cobrowse-accounts):")
    for label, key in accounts.items():
        if not label.startswith(SIMULATOR_LABEL):  # make demo's own agents are not for people
            print(f"  {label:<17} {key}")
    print(line)
    print(f"Logs in {stack.data_dir}/logs/. Press Ctrl-C to stop everything.", flush=True)


if __name__ == "__main__":
    sys.exit(main())

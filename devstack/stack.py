"""The whole system as local processes: Redis, NATS and the three services.

``make up`` (``devstack.up``), the benchmarks and the end-to-end tests all start the system through ``Stack``::

    stack = Stack.start(Path(".run"), simulated=True)
    stack.urls["token"]          # http://127.0.0.1:8080
    await stack.create_account("Ann", Role.AGENT)   # -> API key
    stack.stop()

Servers are started only when no URL is given; services run as ``python -m <package>`` subprocesses with the
environment ``Stack.env`` and are ready once ``/readyz`` answers 200.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.accounts import AccountStore, Role
from shared.redis_conn import redis_client

from .servers import ServerProcess, free_port, start_nats, start_redis, terminate

__all__ = ["DEV_SDK_KEY", "SERVICES", "ServiceProcess", "Stack", "wait_until_ready"]

DEV_SDK_KEY = "DEV-ONLY-simulated-zoom-sdk-key"


@dataclass(frozen=True)
class ServiceSpec:
    package: str
    port_env: str
    default_port: int
    public_url_env: str


SERVICES: dict[str, ServiceSpec] = {
    "token": ServiceSpec("token_service", "TOKEN_PORT", 8080, "PUBLIC_TOKEN_URL"),
    "registry": ServiceSpec("session_registry", "REGISTRY_PORT", 8081, "PUBLIC_REGISTRY_URL"),
    "notification": ServiceSpec("notification_service", "NOTIFY_PORT", 8082, "PUBLIC_NOTIFY_URL"),
}


@dataclass
class ServiceProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclass
class Stack:
    data_dir: Path
    redis_url: str
    nats_url: str
    env: dict[str, str]
    urls: dict[str, str] = field(default_factory=dict)
    servers: list[ServerProcess] = field(default_factory=list)
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        redis_url: str | None = None,
        nats_url: str | None = None,
        services: tuple[str, ...] = tuple(SERVICES),
        ports: dict[str, int] | None = None,
        env: dict[str, str] | None = None,
        persist: bool = False,
        ready_timeout_s: float = 30.0,
    ) -> Stack:
        """Start what is missing and every service in ``services``; ``ports`` default to free ones.

        ``env`` adds to (and overrides) the environment the services get. Without Zoom credentials in
        ``env`` or ``os.environ`` the services run with development credentials and ``ZOOM_SIMULATED=true``.
        """
        data_dir.mkdir(parents=True, exist_ok=True)
        servers: list[ServerProcess] = []
        if redis_url is None:
            servers.append(start_redis(data_dir / "redis", persist=persist))
            redis_url = servers[-1].url
        if nats_url is None:
            servers.append(start_nats(data_dir / "nats"))
            nats_url = servers[-1].url
        ports = {name: (ports or {}).get(name) or free_port() for name in SERVICES}
        urls = {name: f"http://127.0.0.1:{ports[name]}" for name in SERVICES}
        merged = {**os.environ, **(env or {})}
        service_env = {
            "REDIS_URL": redis_url,
            "NATS_URL": nats_url,
            "LOG_JSON": "true",
            "CORS_ORIGINS": ",".join(urls.values()),
            "SESSION_TOKEN_SECRET": merged.get("SESSION_TOKEN_SECRET") or secrets.token_urlsafe(32),
            "ZOOM_WEBHOOK_SECRET_TOKEN": merged.get("ZOOM_WEBHOOK_SECRET_TOKEN") or secrets.token_urlsafe(24),
        }
        if not (merged.get("ZOOM_SDK_KEY") and merged.get("ZOOM_SDK_SECRET")):
            service_env |= {
                "ZOOM_SDK_KEY": DEV_SDK_KEY,
                "ZOOM_SDK_SECRET": secrets.token_urlsafe(32),
                "ZOOM_SIMULATED": "true",
            }
        for name, spec in SERVICES.items():
            service_env[spec.port_env] = str(ports[name])
            service_env[spec.public_url_env] = urls[name]
        stack = cls(data_dir, redis_url, nats_url, {**merged, **service_env}, urls, servers)
        try:
            for name in services:
                stack._spawn(name)
            stack.wait_ready(ready_timeout_s)
        except BaseException:
            stack.stop()
            raise
        return stack

    def _spawn(self, name: str) -> None:
        spec = SERVICES[name]
        log_path = self.data_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", spec.package],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                # Own process group: Ctrl-C in the terminal reaches the launcher, which stops services in order.
                start_new_session=True,
            )
        self.services[name] = ServiceProcess(name, self.urls[name], process, log_path)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = dict(self.services)
        while pending:
            for name, service in list(pending.items()):
                if service.process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {service.process.returncode}:\n{service.log_tail()}")
                if _ready(service.url):
                    del pending[name]
            if pending and time.monotonic() > deadline:
                names = ", ".join(pending)
                raise TimeoutError(f"not ready after {timeout_s} s: {names}\n{pending[next(iter(pending))].log_tail()}")
            time.sleep(0.05)

    def restart(self, name: str, timeout_s: float = 30.0) -> None:
        """Stop one service (SIGTERM) and start it again with the same port and environment."""
        terminate(self.services.pop(name).process)
        self._spawn(name)
        self.wait_ready(timeout_s)

    async def create_account(self, name: str, role: Role) -> str:
        """Create a staff account directly in Redis; returns its API key."""
        redis = redis_client(self.redis_url, mode=self.env.get("REDIS_MODE", "standalone"))
        try:
            _, api_key = await AccountStore(redis).create(name, role)
        finally:
            await redis.aclose()
        return api_key

    def stop(self) -> None:
        """Stop services first (they drain NATS and use Redis while stopping), then the servers we started."""
        for service in reversed(list(self.services.values())):
            terminate(service.process)
        self.services.clear()
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()


def wait_until_ready(url: str, exited: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll ``url``'s ``/readyz`` until it answers 200; raise if ``exited()`` or after ``timeout_s``.

    A child process's port offers no event to await, so this polls; async callers run it with ``asyncio.to_thread``.
    """
    deadline = time.monotonic() + timeout_s
    while not _ready(url):
        if exited():
            raise RuntimeError(f"the service at {url} exited before it was ready")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout_s} s")
        time.sleep(0.05)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False

"""Simulated customers and agents driving the real services through their public APIs, so a desk looks busy.

Customers do what the customer page does: ``POST /api/customer/start`` (token service), beacons to the registry
as the SDK would emit them (``pincode_updated``, ``session_started``, heartbeats, ``agent_joined`` once their
request is claimed, ``session_ended``), queue position polling and, when they lose patience, cancel
(notification service). Agents do what the agent console does: the ``/ws/agent`` socket, ``status``, and a
``claim`` for offers after a moment's thought. Nothing talks to Redis or NATS directly.

Usage (``make demo`` runs the first against ``make up``'s stack)::

    python -m devstack.simulator --accounts-file .run/dev-accounts.json
    python -m devstack.simulator --token-url http://127.0.0.1:8080 --agent-key cbk_... --agent-key cbk_... \\
        --customers-per-minute 60 --duration 300

The classes are importable (``Simulator``, ``SimConfig``) for load benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .runinfo import ACCOUNTS_FILE, RUN_DIR, SIMULATOR_LABEL, configured, read_urls
from .stack import SERVICES

__all__ = ["SimConfig", "Simulator", "main"]

FIRST_NAMES = (
    "Ada", "Bo", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kofi", "Lena", "Mateo", "Nia",
    "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wen", "Yusuf", "Zoe",
)  # fmt: skip


CLOSE_REPLACED = 4409  # the notification service closes an agent's older socket when a newer one signs in


@dataclass(frozen=True)
class SimConfig:
    token_url: str = "http://127.0.0.1:8080"
    agent_keys: tuple[str, ...] = ()
    queues: tuple[str, ...] = ("support",)
    customers_per_minute: float = 6.0
    duration_s: float = 0.0  # 0: until interrupted
    max_customers: int = 0  # 0: no limit
    handle_s: tuple[float, float] = (10.0, 40.0)  # how long an agent stays with a customer
    think_s: tuple[float, float] = (0.5, 3.0)  # how long an agent takes to claim an offer
    patience_s: tuple[float, float] = (30.0, 150.0)  # how long a customer waits before giving up
    abandon_ratio: float = 0.3  # share of customers who give up when their patience runs out
    decline_ratio: float = 0.05  # share of offers an agent declines
    capacity: int = 1
    heartbeat_s: float = 30.0
    poll_s: float = 1.0
    report_s: float = 10.0
    seed: int | None = None


@dataclass
class Urls:
    token: str
    registry: str
    notification: str


@dataclass
class Stats:
    counts: Counter[str] = field(default_factory=Counter)
    waits: list[float] = field(default_factory=list)

    def line(self) -> str:
        c = self.counts
        waits = sorted(self.waits)
        p50 = f"{waits[len(waits) // 2]:.1f}s" if waits else "-"
        waiting = c["started"] - c["claimed"] - c["abandoned"] - c["closed_unclaimed"]
        return (
            f"customers {c['started']} | waiting {waiting} | "
            f"claimed {c['claimed']} (median wait {p50}) | ended {c['ended']} | abandoned {c['abandoned']} | "
            f"closed unclaimed {c['closed_unclaimed']} | "
            f"offers {c['offers']} taken-by-others {c['taken']} declined {c['declined']} | "
            f"rate-limited {c['rate_limited']} errors {c['failed']}"
        )


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.stats = Stats()
        self.urls: Urls | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------------------------------ running

    async def run(self) -> Stats:
        """Run agents and a stream of customers until ``duration_s`` passes (or forever) and they finish."""
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            self.urls = await self._discover(http)
            agents = [asyncio.create_task(self._agent(http, key, i)) for i, key in enumerate(self.config.agent_keys)]
            reporter = asyncio.create_task(self._report())
            try:
                await self._arrivals(http)
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
            finally:
                for task in [*agents, reporter, *self._tasks]:
                    task.cancel()
                await asyncio.gather(*agents, reporter, *self._tasks, return_exceptions=True)
        return self.stats

    async def _discover(self, http: aiohttp.ClientSession) -> Urls:
        async with http.get(f"{self.config.token_url.rstrip('/')}/api/config") as response:
            response.raise_for_status()
            urls = (await response.json())["urls"]
        return Urls(urls["token"].rstrip("/"), urls["registry"].rstrip("/"), urls["notification"].rstrip("/"))

    async def _arrivals(self, http: aiohttp.ClientSession) -> None:
        config = self.config
        deadline = time.monotonic() + config.duration_s if config.duration_s else None
        started = 0
        while deadline is None or time.monotonic() < deadline:
            if config.max_customers and started >= config.max_customers:
                return
            task = asyncio.create_task(self._customer(http, started))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
            # Poisson arrivals: exponential gaps with the configured mean rate.
            await asyncio.sleep(self.rng.expovariate(config.customers_per_minute / 60.0))

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.config.report_s)
            print(time.strftime("%H:%M:%S"), self.stats.line(), flush=True)

    def _source_address(self, n: int) -> str | None:
        """Each customer is its own client, as on the internet: against a loopback stack every simulated
        customer connects from its own 127.x.y.z address, so the per-IP start limit applies per customer."""
        assert self.urls is not None
        host = urlsplit(self.urls.token).hostname or ""
        if not host.startswith("127."):
            return None
        n += 2  # 127.0.0.1 is the stack's own address
        return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

    def _between(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    # ------------------------------------------------------------------------------------------ customers

    async def _customer(self, http: aiohttp.ClientSession, n: int) -> None:
        assert self.urls is not None
        name = f"{self.rng.choice(FIRST_NAMES)} (sim {n})"
        queue = self.rng.choice(self.config.queues)
        try:
            customer = await Customer.start(http, self.urls, queue, name, self._source_address(n))
        except RateLimited:
            self.stats.counts["rate_limited"] += 1
            return
        except (aiohttp.ClientError, TimeoutError, KeyError) as exc:
            self.stats.counts["failed"] += 1
            print(f"customer start failed: {exc}", file=sys.stderr, flush=True)
            return
        self.stats.counts["started"] += 1
        heartbeat = asyncio.create_task(customer.heartbeats(self.config.heartbeat_s))
        try:
            await customer.send("pincode_updated", {"pinCode": f"{self.rng.randrange(10**6):06d}"})
            await customer.send("session_started")
            patience = self._between(self.config.patience_s)
            gives_up = self.rng.random() < self.config.abandon_ratio
            outcome, waited = await customer.wait_for_claim(self.config.poll_s, patience if gives_up else None)
            if outcome == "gave_up":
                await customer.cancel()
                self.stats.counts["abandoned"] += 1
                return
            if outcome != "claimed":
                self.stats.counts["closed_unclaimed"] += 1  # e.g. the registry's waiting timeout ended it
                return
            self.stats.counts["claimed"] += 1
            self.stats.waits.append(waited)
            # Zoom's SDK tells the customer page when the agent's desk joins; here the claim stands for it.
            await customer.send("agent_joined", {"simulated": True})
            await asyncio.sleep(self._between(self.config.handle_s))
            await customer.send("session_ended", {"reason": "customer"})
            self.stats.counts["ended"] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.counts["failed"] += 1
            print(f"customer {customer.session_id} failed: {exc}", file=sys.stderr, flush=True)
        except asyncio.CancelledError:
            # The simulator stops: leave nothing behind that holds an agent or a queue place until it times out.
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with asyncio.timeout(2):
                    await customer.send("session_ended", {"reason": "simulator_stopped"})
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    # ------------------------------------------------------------------------------------------ agents

    async def _agent(self, http: aiohttp.ClientSession, api_key: str, n: int) -> None:
        assert self.urls is not None
        url = self.urls.notification.replace("http", "ws", 1) + "/ws/agent"
        backoff = 0.5
        while True:
            try:
                async with http.ws_connect(url, heartbeat=20) as ws:
                    await ws.send_json({"type": "auth", "api_key": api_key})
                    ready = await ws.receive_json(timeout=10)
                    if ready.get("type") != "ready":
                        print(f"agent {n} refused: {ready.get('message')}", file=sys.stderr, flush=True)
                        return
                    backoff = 0.5
                    status = {"type": "status", "status": "available", "capacity": self.config.capacity}
                    await ws.send_json({**status, "queues": list(self.config.queues)})
                    await self._serve(ws)
                if ws.close_code == CLOSE_REPLACED:
                    # Someone opened the agent console with this account: leave the agent to them.
                    print(f"agent {n} signed in elsewhere; the simulator stops using it", file=sys.stderr, flush=True)
                    return
            except (aiohttp.ClientError, TimeoutError, ValueError, TypeError) as exc:
                print(f"agent {n} disconnected: {exc}", file=sys.stderr, flush=True)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        pending: set[asyncio.Task[None]] = set()
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                frame: dict[str, Any] = json.loads(msg.data)
                kind = frame.get("type")
                if kind == "offer":
                    self.stats.counts["offers"] += 1
                    task = asyncio.create_task(self._answer(ws, frame["session_id"]))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                elif kind == "error" and frame.get("code") == "taken":
                    self.stats.counts["taken"] += 1
                elif kind == "status" and frame.get("status") == "away":
                    # Missed an offer (or was set away): come back, as an agent at the console would.
                    await asyncio.sleep(1.0)
                    await ws.send_json({"type": "status", "status": "available", "queues": list(self.config.queues),
                                        "capacity": self.config.capacity})  # fmt: skip
        finally:
            for task in pending:
                task.cancel()

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, session_id: str) -> None:
        await asyncio.sleep(self._between(self.config.think_s))
        if self.rng.random() < self.config.decline_ratio:
            self.stats.counts["declined"] += 1
            await ws.send_json({"type": "decline", "session_id": session_id})
        else:
            await ws.send_json({"type": "claim", "session_id": session_id})


class RateLimited(Exception):
    """The token service refused a start with 429."""


@dataclass
class Customer:
    """One simulated customer page: its session credentials and beacon sequence."""

    http: aiohttp.ClientSession
    urls: Urls
    session_id: str
    token: str
    beacon_url: str
    seq: int = 0

    @classmethod
    async def start(
        cls, http: aiohttp.ClientSession, urls: Urls, queue: str, name: str, source_address: str | None = None
    ) -> Customer:
        body = {"queue": queue, "userName": name}
        async with contextlib.AsyncExitStack() as stack:
            client = http
            if source_address:
                connector = aiohttp.TCPConnector(local_addr=(source_address, 0))
                own = aiohttp.ClientSession(connector=connector, timeout=http.timeout)
                client = await stack.enter_async_context(own)
            async with client.post(f"{urls.token}/api/customer/start", json=body) as response:
                data = await response.json()
        if response.status == 429:
            raise RateLimited(response.headers.get("Retry-After", ""))
        if response.status != 200:
            raise aiohttp.ClientError(f"start answered {response.status}: {data.get('error')}")
        return cls(http, urls, data["session_id"], data["session_token"], data["beacon_url"])

    async def send(self, name: str, payload: dict[str, Any] | None = None) -> None:
        """POST one event the way beacon.js does (text/plain, credential in the body)."""
        self.seq += 1
        event = {"id": uuid.uuid4().hex, "name": name, "ts": int(time.time() * 1000), "seq": self.seq,
                 "payload": payload or {}}  # fmt: skip
        body = json.dumps({"session_id": self.session_id, "token": self.token, "events": [event]})
        headers = {"Content-Type": "text/plain;charset=UTF-8"}
        async with self.http.post(self.beacon_url, data=body, headers=headers) as response:
            if response.status >= 300:
                raise aiohttp.ClientError(f"beacon {name} answered {response.status}: {await response.text()}")

    async def heartbeats(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                await self.send("heartbeat")

    def _request_url(self) -> str:
        return f"{self.urls.notification}/api/requests/{self.session_id}"

    async def wait_for_claim(self, poll_s: float, patience_s: float | None) -> tuple[str, float]:
        """Poll the request until it is claimed (``"claimed"``), closed (its state) or patience ran out
        (``"gave_up"``); returns the outcome and the seconds waited."""
        started = time.monotonic()
        while patience_s is None or time.monotonic() - started < patience_s:
            await asyncio.sleep(poll_s)
            async with self.http.get(self._request_url(), params={"token": self.token}) as response:
                if response.status == 404:
                    continue  # not queued yet: the PIN is still on its way through the registry
                data = await response.json()
            state = str(data.get("state"))
            if state in ("claimed", "joined"):
                return "claimed", time.monotonic() - started
            if state in ("cancelled", "ended"):
                return state, time.monotonic() - started
        return "gave_up", time.monotonic() - started

    async def cancel(self) -> None:
        headers = {"X-Session-Token": self.token}
        async with self.http.delete(self._request_url(), headers=headers) as response:
            await response.read()
        await self.send("session_ended", {"reason": "customer_gave_up"})


# ---------------------------------------------------------------------------------------------- CLI


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        bounds = (float(low), float(high or low))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX seconds, got {text!r}") from exc
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"expected 0 <= MIN <= MAX, got {text!r}")
    return bounds


def _agent_keys(args: argparse.Namespace) -> tuple[str, ...]:
    keys = list(args.agent_key)
    if args.accounts_file or not keys:
        path: Path = args.accounts_file or RUN_DIR / ACCOUNTS_FILE
        if not path.exists():
            raise SystemExit(f"{path} does not exist: start the stack with `make up` first")
        accounts: dict[str, str] = json.loads(path.read_text())
        # Only the simulator's own agents: a person may be signed in with one of the printed keys.
        keys += [key for label, key in accounts.items() if label.startswith(f"{SIMULATOR_LABEL} agent")]
    if not keys:
        raise SystemExit(f"no simulator agents in {path}: run this version's `make up` once, or pass --agent-key")
    return tuple(keys)


def _token_url() -> str:
    """The running `make up`'s token service, else PUBLIC_TOKEN_URL or TOKEN_PORT (environment, then .env)."""
    running = read_urls().get("TOKEN_URL")
    if running:
        return running
    settings = configured()
    if settings.get("PUBLIC_TOKEN_URL"):
        return settings["PUBLIC_TOKEN_URL"]
    return f"http://127.0.0.1:{settings.get('TOKEN_PORT') or SERVICES['token'].default_port}"


def parse_args(argv: list[str] | None = None) -> SimConfig:
    parser = argparse.ArgumentParser(prog="python -m devstack.simulator", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--token-url", help="token service, which names the others (default: make up's, as in .run/urls.env)"
    )
    parser.add_argument("--agent-key", action="append", default=[], metavar="KEY", help="an agent's API key")
    parser.add_argument(
        "--accounts-file",
        type=Path,
        help=f"JSON {{label: key}} written by make up (default: {RUN_DIR / ACCOUNTS_FILE}); uses its simulator agents",
    )
    parser.add_argument("--queues", default="support", help="comma-separated queues (default: support)")
    parser.add_argument("--customers-per-minute", type=float, default=6.0, help="mean arrival rate (default: 6)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds of arrivals; 0 = until Ctrl-C")
    parser.add_argument("--max-customers", type=int, default=0, help="stop arrivals after N customers")
    parser.add_argument("--handle", type=_range, default=(10.0, 40.0), help="session length MIN-MAX s")
    parser.add_argument("--think", type=_range, default=(0.5, 3.0), help="agent's time to claim MIN-MAX s")
    parser.add_argument("--patience", type=_range, default=(30.0, 150.0), help="customer patience MIN-MAX s")
    parser.add_argument("--abandon", type=float, default=0.3, help="share of customers who may give up")
    parser.add_argument("--decline", type=float, default=0.05, help="share of offers agents decline")
    parser.add_argument("--capacity", type=int, default=1, help="concurrent sessions per agent")
    parser.add_argument("--seed", type=int, help="random seed, for repeatable runs")
    args = parser.parse_args(argv)
    if args.customers_per_minute <= 0:
        parser.error("--customers-per-minute must be positive")
    return SimConfig(
        token_url=args.token_url or _token_url(),
        agent_keys=_agent_keys(args),
        queues=tuple(q.strip() for q in args.queues.split(",") if q.strip()),
        customers_per_minute=args.customers_per_minute,
        duration_s=args.duration,
        max_customers=args.max_customers,
        handle_s=args.handle,
        think_s=args.think,
        patience_s=args.patience,
        abandon_ratio=args.abandon,
        decline_ratio=args.decline,
        capacity=args.capacity,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    print(
        f"Simulating {len(config.agent_keys)} agents and ~{config.customers_per_minute:g} customers/min against "
        f"{config.token_url}; Ctrl-C stops.",
        flush=True,
    )
    simulator = Simulator(config)
    try:
        stats = asyncio.run(simulator.run())
    except KeyboardInterrupt:
        stats = simulator.stats
    except aiohttp.ClientError as exc:
        print(f"cannot reach the stack at {config.token_url}: {exc}", file=sys.stderr)
        return 1
    print("Done:", stats.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

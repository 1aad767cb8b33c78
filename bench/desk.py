"""What the notification suites share: percentiles, agents' sockets on a queue, and closing them cleanly."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp

from notification_service.settings import Settings as NotifySettings
from shared.accounts import AccountStore, Role
from shared.messaging import STREAM

NOTIFY_CONSUMER = NotifySettings.model_fields["consumer_name"].default  # the durable consumer the services share

__all__ = [
    "clocks_running",
    "close_agents",
    "connect",
    "open_agents",
    "open_loop",
    "percentile",
    "until_caught_up",
    "until_offered",
]


@contextmanager
def clocks_running() -> Iterator[None]:
    """No garbage collection in this process while latencies are measured: the load generator's full collections
    (45-56 ms with a few thousand sessions' objects about) would show as the desk's latency."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


async def open_loop(total: int, rate_per_s: float, one: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """Start ``one(0)`` … ``one(total - 1)`` at a steady rate, each at its own slot whether or not earlier ones
    are done (a closed loop would slow down with the server and hide its tail); returns when all have finished."""
    begin = time.perf_counter()
    pending: list[asyncio.Task[None]] = []
    for i in range(total):
        delay = begin + i / rate_per_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(one(i)))
    await asyncio.gather(*pending)


async def connect(http: aiohttp.ClientSession, url: str, api_key: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(url)
    await ws.send_json({"type": "auth", "api_key": api_key})
    return ws


async def open_agents(
    http: aiohttp.ClientSession, ws_base: str, accounts: AccountStore, queue: str, count: int, capacity: int
) -> list[aiohttp.ClientWebSocketResponse]:
    """``count`` agents available on ``queue``, each taking up to ``capacity`` offers at once."""
    sockets = []
    for i in range(count):
        _, key = await accounts.create(f"bench-agent-{queue}-{i}", Role.AGENT)
        ws = await connect(http, ws_base + "/ws/agent", key)
        assert json.loads((await ws.receive()).data)["type"] == "ready"
        await ws.send_json({"type": "status", "status": "available", "queues": [queue], "capacity": capacity})
        assert json.loads((await ws.receive()).data)["type"] == "status"
        sockets.append(ws)
    return sockets


async def close_agents(nc: Any, sockets: list[aiohttp.ClientWebSocketResponse]) -> None:
    """Close agent sockets and wait until the service has handled every disconnect (so it is idle again)."""
    gone = 0
    all_gone = asyncio.Event()

    async def count(msg: Any) -> None:
        nonlocal gone
        gone += 1
        if gone == len(sockets):
            all_gone.set()

    sub = await nc.subscribe("cobrowse.agent.*.disconnected", cb=count)
    for ws in sockets:
        await ws.close()
    await asyncio.wait_for(all_gone.wait(), timeout=60)
    await sub.unsubscribe()


async def until_offered(
    done: asyncio.Event, readers: list[asyncio.Task[None]], nc: Any, sockets: list[aiohttp.ClientWebSocketResponse]
) -> None:
    """Wait (at most 30 s) until ``done``, then stop the socket readers and close the agents."""
    try:
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        for task in readers:
            task.cancel()
        await close_agents(nc, sockets)


async def until_caught_up(nc: Any, within_s: float = 60.0) -> None:
    """Wait until the notification service has handled every session event on JetStream (none pending or unacked):
    a measurement must not start while it still works through what came before (on a slow machine, seconds)."""
    js = nc.jetstream()
    async with asyncio.timeout(within_s):
        while True:
            info = await js.consumer_info(STREAM, NOTIFY_CONSUMER)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            await asyncio.sleep(0.05)  # polled: JetStream has no notification for a consumer that caught up

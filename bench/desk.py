"""What the notification suites share: percentiles, agents' sockets on a queue, and closing them cleanly."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import aiohttp

from shared.accounts import AccountStore, Role

__all__ = ["close_agents", "connect", "open_agents", "percentile"]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


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

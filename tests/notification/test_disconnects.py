"""When many agent sockets drop at once every clean-up completes and publishes ``disconnected`` (issue 8: with the
default Redis pool of 100 connections ~400 of 500 failed and their events were never published)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from shared.accounts import AccountStore, Role

pytestmark = pytest.mark.cluster

AGENTS = 500


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_500_agent_sockets_dropping_at_once_all_publish_disconnected(replica, redis, nc):
    client = await replica()
    accounts = AccountStore(redis)
    keys = [(await accounts.create(f"agent{i}", Role.AGENT))[1] for i in range(AGENTS)]

    gone: set[str] = set()
    all_gone = asyncio.Event()

    async def on_disconnected(msg) -> None:
        gone.add(json.loads(msg.data)["agent_id"])
        if len(gone) == AGENTS:
            all_gone.set()

    sub = await nc.subscribe("cobrowse.agent.*.disconnected", cb=on_disconnected)
    # The test client's own session allows 100 connections; these sockets need 500.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def connect(key: str) -> aiohttp.ClientWebSocketResponse:
            ws = await session.ws_connect(client.make_url("/ws/agent"))
            await ws.send_json({"type": "auth", "api_key": key})
            assert (await ws.receive_json())["type"] == "ready"
            return ws

        sockets = []
        for first in range(0, AGENTS, 50):
            sockets += await asyncio.gather(*(connect(key) for key in keys[first : first + 50]))
        await asyncio.gather(*(ws.close() for ws in sockets))  # all drop at once
        async with asyncio.timeout(60):
            await all_gone.wait()
    await sub.unsubscribe()
    assert len(gone) == AGENTS

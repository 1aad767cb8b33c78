"""A resumed dashboard never skips silently (issue 10): a replay that JetStream stops answering ends with
``dropped`` naming the last event sent, and resuming from there delivers the rest with no gap or duplicate."""

from __future__ import annotations

import asyncio
import os
import signal

import nats
import pytest

from devstack.servers import start_nats
from shared.accounts import Role
from shared.messaging import STREAM, AgentEvent, agent_subject, new_event_id

from .test_dashboard import SSE

EVENTS = 2000
PADDING = "x" * 10_000  # 20 MB in all: far more than socket buffers hold, so the replay is mid-way when NATS stops
NATS_STOPPED_S = 4.0  # the fault the issue names


async def _fill(url: str) -> int:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for first in range(0, EVENTS, 200):
        await asyncio.gather(
            *(
                js.publish(
                    agent_subject("a1", "status"),
                    AgentEvent(
                        event_id=new_event_id(), type="status", agent_id="a1", data={"n": n, "pad": PADDING}
                    ).encode(),
                )
                for n in range(first, first + 200)
            )
        )
    last = (await js.stream_info(STREAM)).state.last_seq
    await nc.close()
    return last


async def _read(stream: SSE, received: list[int], end: int) -> dict | None:
    """Events until ``end`` (returns ``None``) or until a ``dropped`` frame (returned)."""
    while True:
        event_id, frame = await stream.next()
        if frame["type"] == "dropped":
            return frame
        assert frame["type"] == "event" and frame["id"] == event_id
        received.append(event_id)
        if event_id == end:
            return None


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_replay_with_nats_stopped_mid_way_drops_at_the_last_id_sent_and_resumes_without_gap(
    replica, account, tmp_path
):
    server = start_nats(tmp_path / "nats")
    try:
        client = await replica(nats_url=server.url)
        end = await _fill(server.url)
        _, key = await account("sup", role=Role.SUPERVISOR)
        headers = {"Authorization": f"Bearer {key}"}
        received: list[int] = []
        stream = SSE(await client.get("/events", headers={**headers, "Last-Event-ID": "0"}))
        for _ in range(100):
            received.append((await stream.next())[0])

        os.kill(server.process.pid, signal.SIGSTOP)
        asyncio.get_running_loop().call_later(NATS_STOPPED_S, os.kill, server.process.pid, signal.SIGCONT)
        drops = []
        while (dropped := await _read(stream, received, end)) is not None:
            assert dropped["last_id"] == received[-1], dropped  # the last event actually sent
            drops.append(dropped["reason"])
            assert len(drops) < 20, drops
            stream.response.close()
            resume = await client.get("/events", headers={**headers, "Last-Event-ID": str(dropped["last_id"])})
            assert resume.status == 200
            stream = SSE(resume)

        assert drops and set(drops) == {"replay_stalled"}
        assert received == list(range(1, end + 1))  # every event once, in order
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()

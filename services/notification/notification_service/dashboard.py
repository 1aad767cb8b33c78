"""Live event stream for supervisors: ``GET /events`` (Server-Sent Events) and ``GET /ws/dashboard``.

Each replica tails the whole ``COBROWSE`` stream once (an ordered consumer) and fans every event out to its
clients through a bounded buffer per client; an event's id is its stream sequence. A client that resumes
with ``Last-Event-ID`` N is registered first, so every event after the tail's position L is buffered for it,
then N+1..L is replayed from JetStream: no gap, no duplicate. A client whose buffer overflows is dropped with
``{"type": "dropped", "reason": "slow_consumer", "last_id": ...}`` and resumes from there. A replay that
JetStream stops answering for ``REPLAY_STALL_S`` ends the same way (``reason: "replay_stalled"``, ``last_id`` the
last event it processed): a resumed stream never skips silently.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.errors import ValidationFailed
from shared.messaging import STREAM, STREAM_SUBJECTS

from .metrics import DASHBOARD_CLIENTS, DASHBOARD_DROPS

__all__ = ["SSE_HEADERS", "Client", "Fanout", "Filters", "ReplayStalled", "StreamEvent", "parse_last_id", "stream_to"]

log = structlog.get_logger()

REPLAY_STALL_S = 2.0
"""JetStream silent this long during a replay: the client is told where it got to (``dropped``) and resumes."""
REPLAY_BATCH = 256
REPLAY_CONSUMER_IDLE_S = 10.0
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class StreamEvent:
    seq: int
    kind: str  # session, queue, agent
    type: str
    session_id: str
    queues: frozenset[str]
    frame: str  # the JSON frame sent to clients

    @classmethod
    def from_msg(cls, msg: Msg) -> StreamEvent:
        seq = msg.metadata.sequence.stream
        parts = msg.subject.split(".")
        kind, type_ = parts[1], parts[-1]
        payload: dict[str, Any] = json.loads(msg.data)
        if kind == "session":
            session_id, queues = parts[2], frozenset([payload.get("session", {}).get("queue", "")])
        elif kind == "queue":
            session_id, queues = payload.get("session_id", ""), frozenset([parts[2]])
        else:
            session_id, queues = "", frozenset(payload.get("queues", []))
        frame = json.dumps({"type": "event", "id": seq, "kind": kind, "subject": msg.subject, "event": payload})
        return cls(seq, kind, type_, session_id, queues, frame)


@dataclass(frozen=True)
class Filters:
    queues: frozenset[str] = frozenset()
    sessions: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filters:
        def values(name: str) -> frozenset[str]:
            return frozenset(v.strip() for v in query.get(name, "").split(",") if v.strip())

        return cls(values("queue"), values("session"), values("type"))

    def match(self, event: StreamEvent) -> bool:
        return (
            (not self.queues or bool(self.queues & event.queues))
            and (not self.sessions or event.session_id in self.sessions)
            and (not self.types or event.type in self.types)
        )


@dataclass(eq=False)
class Client:
    filters: Filters
    buffer: int
    events: asyncio.Queue[StreamEvent | None] = field(init=False)
    dropped: str | None = None

    def __post_init__(self) -> None:
        self.events = asyncio.Queue(self.buffer)

    def offer(self, event: StreamEvent) -> None:
        if self.dropped is None and self.filters.match(event):
            try:
                self.events.put_nowait(event)
            except asyncio.QueueFull:
                self.drop("slow_consumer")

    def drop(self, reason: str) -> None:
        """End the stream: what is buffered is discarded, the client resumes from what it last got."""
        if self.dropped is not None:
            return
        self.dropped = reason
        DASHBOARD_DROPS.labels(reason).inc()
        while not self.events.empty():
            self.events.get_nowait()
        self.events.put_nowait(None)


class Fanout:
    """This replica's tail of the stream and its dashboard clients."""

    def __init__(self, js: JetStreamContext, buffer: int, stall_s: float = REPLAY_STALL_S) -> None:
        self.js = js
        self.buffer = buffer
        self.stall_s = stall_s
        self.clients: set[Client] = set()
        self.last_seq = 0
        self._sub: Any = None

    async def start(self) -> None:
        info = await self.js.stream_info(STREAM)
        self.last_seq = info.state.last_seq
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.last_seq + 1)
        self._sub = await self.js.subscribe(STREAM_SUBJECTS[0], ordered_consumer=True, config=config, cb=self._on_msg)

    def close_clients(self) -> None:
        for client in list(self.clients):
            client.drop("shutdown")

    async def stop(self) -> None:
        self.close_clients()
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        try:
            event = StreamEvent.from_msg(msg)
        except (ValueError, KeyError, IndexError, AttributeError):
            log.warning("stream_event_unreadable", subject=msg.subject)
            return
        self.last_seq = event.seq
        for client in self.clients:
            client.offer(event)

    async def check_resume(self, last_id: int | None) -> None:
        """Refuse a resume from an id the stream has not reached (nothing would ever be sent to it)."""
        if last_id is None or last_id <= self.last_seq:
            return
        last = (await self.js.stream_info(STREAM)).state.last_seq
        if last_id > last:
            raise ValidationFailed.one("Last-Event-ID", f"is past the end of the stream (last id {last})")

    def register(self, filters: Filters) -> Client:
        client = Client(filters, self.buffer)
        self.clients.add(client)
        DASHBOARD_CLIENTS.inc()
        return client

    def unregister(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            DASHBOARD_CLIENTS.dec()

    async def replay(self, start: int, end: int) -> AsyncIterator[tuple[int, StreamEvent | None]]:
        """Events ``start``..``end`` (stream sequences) from JetStream, as ``(seq, event)`` (``None``: unreadable).

        Read in batches through a pull consumer, so a replay holds one batch in memory. Raises ``ReplayStalled``
        when JetStream answers nothing for ``stall_s`` (or NATS is unreachable): the caller tells the client where
        it got to.
        """
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=REPLAY_CONSUMER_IDLE_S,
        )
        try:
            async with asyncio.timeout(self.stall_s):
                sub = await self.js.pull_subscribe(STREAM_SUBJECTS[0], stream=STREAM, config=config)
        except (TimeoutError, NatsError) as exc:
            raise ReplayStalled(start - 1) from exc
        seq = start - 1
        try:
            while True:
                try:
                    batch = await sub.fetch(REPLAY_BATCH, timeout=self.stall_s)
                except (TimeoutError, NatsError) as exc:
                    raise ReplayStalled(seq) from exc
                for msg in batch:
                    seq = msg.metadata.sequence.stream
                    if seq > end:
                        return
                    try:
                        event: StreamEvent | None = StreamEvent.from_msg(msg)
                    except (ValueError, KeyError, IndexError, AttributeError):
                        log.warning("stream_event_unreadable", subject=msg.subject)
                        event = None
                    yield seq, event
                    if seq == end or msg.metadata.num_pending == 0:
                        return
        finally:
            # The consumer goes away by itself once idle (a stalled server cannot be asked now).
            await sub.unsubscribe()


class ReplayStalled(Exception):
    """JetStream answered nothing for too long during a replay; ``last_seq`` is the last event read."""

    def __init__(self, last_seq: int) -> None:
        self.last_seq = last_seq
        super().__init__(f"replay stalled after {last_seq}")


LAST_ID = re.compile(r"[0-9]{1,19}", re.ASCII)
"""ASCII digits only: ``str.isdigit`` accepts ``²`` and ``int`` then refuses it (that was a 500)."""


def parse_last_id(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not LAST_ID.fullmatch(value):
        raise ValidationFailed.one("Last-Event-ID", "must be a stream sequence number (ASCII digits)")
    return int(value)


Send = Callable[[str, int | None], Awaitable[None]]
"""Writes one JSON frame (and its event id, if any) to the client."""


async def stream_to(
    fanout: Fanout,
    client: Client,
    last_id: int | None,
    snapshot: Callable[[], Awaitable[tuple[int, str]]],
    send: Send,
    keepalive: Callable[[], Awaitable[None]],
    keepalive_s: float,
) -> tuple[str, int]:
    """Feed a registered client: snapshot or replay, then the live tail.

    Returns why the stream ended (the client was dropped) and the id of the last event it was sent.
    """
    boundary = fanout.last_seq  # every later event is already going into the client's buffer
    if last_id is None:
        # A snapshot may be a little older than the boundary (snapshots are shared): what came after it is
        # replayed like a resume from its id.
        last_id, frame = await snapshot()
        await send(frame, last_id)
    if last_id < boundary:
        try:
            async for seq, missed in fanout.replay(last_id + 1, boundary):
                if missed is not None and client.filters.match(missed):
                    await send(missed.frame, missed.seq)
                last_id = seq
        except ReplayStalled as exc:
            # Never jump to live over a gap: the client resumes from what it was sent.
            log.warning("replay_stalled", last_event_id=exc.last_seq, boundary=boundary)
            return "replay_stalled", exc.last_seq
    sent = max(last_id, boundary)
    getter: asyncio.Future[StreamEvent | None] | None = None
    try:
        while True:
            # asyncio.wait, not asyncio.timeout: on 3.11 a cancel landing as the timeout expires can be swallowed.
            getter = getter or asyncio.ensure_future(client.events.get())
            done, _ = await asyncio.wait([getter], timeout=keepalive_s)
            if not done:
                await keepalive()
                continue
            event, getter = getter.result(), None
            if event is None:
                return client.dropped or "closed", sent
            if event.seq > sent:
                await send(event.frame, event.seq)
                sent = event.seq
    finally:
        if getter is not None:
            getter.cancel()

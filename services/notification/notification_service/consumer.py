"""The registry's session events, from a durable JetStream consumer that all replicas share.

A queue (deliver-group) push consumer hands each event to one replica; the event is acked after its change is
in Redis, so an event a replica took but did not finish is redelivered to another after ``ack_wait``. Events are
handled concurrently: the scripts apply a session's events in its version order, whatever order they come in.

Failure model: an event whose handling fails (Redis briefly unreachable, a bug) is nak'ed with a delay that grows
with its delivery count (capped), so it waits for Redis instead of being dropped; an ack or nak that cannot reach
NATS is left to ``ack_wait``. The consumer never dies of one event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import structlog
from aiohttp import web
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from structlog.contextvars import bound_contextvars

from shared.keys import JETSTREAM
from shared.messaging import SESSION_EVENTS, SessionEvent
from shared.outages import outage_of

from .keys import INTAKE, SETTINGS

__all__ = ["session_consumer"]

log = structlog.get_logger()

ACK_WAIT_S = 30.0
NAK_MIN_S = 0.2
NAK_MAX_S = 5.0


async def _settle(reply: Awaitable[None]) -> None:
    try:
        await reply
    except Exception as exc:  # NATS unreachable: the event comes back after ack_wait
        log.warning("session_event_unsettled", error=type(exc).__name__)


async def session_consumer(app: web.Application) -> AsyncIterator[None]:
    intake = app[INTAKE]
    # Events are handled concurrently (a subscription alone handles one at a time, and each waits on Redis and
    # NATS round trips); the scripts in Redis keep an older event of a session from undoing a newer one.
    slots = asyncio.Semaphore(app[SETTINGS].consumer_concurrency)
    running: set[asyncio.Task[None]] = set()

    async def handle(msg: Msg) -> None:
        await slots.acquire()
        task = asyncio.create_task(process(msg))
        running.add(task)
        task.add_done_callback(done)

    def done(task: asyncio.Task[None]) -> None:
        running.discard(task)
        slots.release()

    async def process(msg: Msg) -> None:
        with bound_contextvars(subject=msg.subject):
            try:
                event = SessionEvent.model_validate_json(msg.data)
            except ValidationError as exc:
                # A payload we cannot read never becomes readable: drop it instead of redelivering it forever.
                log.warning("session_event_invalid", errors=exc.error_count())
                await msg.term()
                return
            try:
                await intake.on_session_event(event)
            except Exception as exc:
                delivered = msg.metadata.num_delivered if msg.reply else 1
                delay = min(NAK_MIN_S * 2.0 ** (delivered - 1), NAK_MAX_S)
                if outage_of(exc) is not None:
                    log.warning("session_event_retry", event_id=event.event_id, error=type(exc).__name__, delay_s=delay)
                else:
                    log.exception("session_event_failed", event_id=event.event_id, delay_s=delay)
                await _settle(msg.nak(delay=delay))
                return
            await _settle(msg.ack())

    name = app[SETTINGS].consumer_name
    config = ConsumerConfig(
        durable_name=name,
        deliver_group=name,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_S,
        deliver_policy=DeliverPolicy.NEW,
        max_ack_pending=1000,
    )
    sub = await app[JETSTREAM].subscribe(SESSION_EVENTS, queue=name, cb=handle, manual_ack=True, config=config)
    yield
    await sub.unsubscribe()
    if running:
        await asyncio.wait(running, timeout=ACK_WAIT_S)

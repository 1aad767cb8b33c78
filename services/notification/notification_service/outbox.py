"""The notification outboxes: QueueEvents and AgentEvents that must reach JetStream after a Redis commit.

Each desk has its outbox (``notify:{d:<desk>}:outbox``) and its publishing lease, in the desk's slot, so desks are
published in parallel by whichever replicas hold their leases; events of one desk keep their order.

Failure model. A claim or a cancel writes its event into its desk's outbox stream in the same Lua step as
the change, so the change and its event are one: if NATS is down the HTTP/WebSocket answer is still given, and
the event waits in Redis. Other events (offers, declines, presence) are published directly; when JetStream does
not take one, it is appended to the outbox instead of failing the caller. Right after a commit the replica tries
to publish the scripted event itself (the common case: JetStream is up) and deletes the entry; whatever is left
is published by the one replica holding the desk's publishing lease, in outbox order, entry by entry with JetStream's
ack, and deleted after the ack. An entry published twice (direct attempt racing the publisher, or a crash between
ack and delete) is stored once: each carries its ``event_id`` as ``Nats-Msg-Id`` and JetStream drops the copy
within its duplicate window. Agent socket frames (core NATS) are best effort and never go through here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from redis.exceptions import RedisError

from shared.lease import Lease
from shared.messaging import MSG_ID_HEADER
from shared.redis_conn import RedisClient
from shared.tasks import wait_event

from .desks import DESK, DeskMap
from .replies import OutboxEntry

__all__ = ["Outbox"]

log = structlog.get_logger()

PUBLISH_TIMEOUT_S = 2.0
BATCH = 100
RETRY_MAX_S = 2.0


class Outbox:
    def __init__(
        self, redis: RedisClient, nc: NatsClient, js: JetStreamContext, desks: DeskMap, *, lease_s: float
    ) -> None:
        self._redis = redis
        self._nc = nc
        self._js = js
        self.leases = {desk: Lease(redis, DESK.key(DESK.base(desk), "lease"), lease_s) for desk in desks.names}
        self.written = asyncio.Event()
        """Set when this replica left an entry for the publisher (wakes it at once if it holds the lease)."""

    async def _publish(self, subject: str, data: bytes, event_id: str) -> None:
        if not self._nc.is_connected:
            # Fail fast: a publish while reconnecting would wait out its timeout in the caller's request.
            raise ConnectionError("NATS is not connected")
        await self._js.publish(subject, data, headers={MSG_ID_HEADER: event_id}, timeout=PUBLISH_TIMEOUT_S)

    @staticmethod
    def key(desk: str) -> str:
        return DESK.key(DESK.base(desk), "outbox")

    async def publish(self, desk: str, subject: str, data: bytes, event_id: str) -> None:
        """Publish an event now; if JetStream does not take it, keep it in the desk's outbox for later."""
        try:
            await self._publish(subject, data, event_id)
        except Exception as exc:  # any NATS failure: the event must not be lost nor fail the caller
            log.warning("event_publish_deferred", subject=subject, error=type(exc).__name__)
            await self._redis.xadd(self.key(desk), {"i": event_id, "s": subject, "d": data.decode()})
            self.written.set()

    async def flush(self, desk: str, entry: OutboxEntry | None) -> None:
        """Try to publish an event a script wrote to the outbox; the publisher retries if this fails."""
        if entry is None:
            return
        try:
            await self._publish(entry.subject, entry.data.encode(), entry.event_id)
        except Exception as exc:
            log.warning("event_publish_deferred", subject=entry.subject, error=type(exc).__name__)
            self.written.set()
            return
        with contextlib.suppress(RedisError):  # left behind, it is published again and dropped as a duplicate
            await self._redis.xdel(self.key(desk), entry.entry)

    async def publish_pending(self, desk: str) -> int:
        """Publish a desk's oldest entries in order, deleting each after JetStream's ack; returns how many."""
        key = self.key(desk)
        entries = cast(list[tuple[str, dict[str, str]]], await self._redis.xrange(key, "-", "+", count=BATCH))
        for done, (entry_id, fields) in enumerate(entries):
            try:
                await self._publish(fields["s"], fields["d"].encode(), fields["i"])
            except Exception:
                if done:
                    log.info("outbox_published", count=done)
                raise
            await self._redis.xdel(key, entry_id)
        if entries:
            log.info("outbox_published", count=len(entries))
        return len(entries)

    async def run(self, poll_s: float) -> None:
        """The publisher loop: waits (capped backoff) through Redis or NATS outages, never gives up."""
        delay = 0.05
        while True:
            try:
                self.written.clear()
                more = False
                for desk, lease in self.leases.items():
                    if await lease.hold():
                        more |= await self.publish_pending(desk) >= BATCH
                if more:
                    continue
                delay = 0.05
                await wait_event(self.written, poll_s)
            except Exception as exc:
                log.warning("outbox_retry", error=type(exc).__name__, retry_in_s=delay)
                self.written.clear()
                await wait_event(self.written, delay)  # a NATS reconnect (or a local deferral) ends the pause early
                delay = min(delay * 2, RETRY_MAX_S)

    async def release(self) -> None:
        """Hand every lease this replica holds over at once (at shutdown)."""
        for lease in self.leases.values():
            await lease.release()

"""The outbox publisher: moves accepted SessionEvents from the partitions' outbox streams to JetStream.

The scripts in ``store.py`` write each event to its partition's ``reg:{p<n>}:outbox`` in the same step as the
change, so an accepted beacon survives NATS being down and the registry being restarted. Each partition is
published by one replica at a time, the one holding its lease (``assignment.py`` spreads the partitions over the
live replicas), so JetStream receives a session's events in outbox order while N replicas publish N partitions in
parallel. For each partition it holds, a replica publishes a batch, waits for JetStream's ack, and deletes the
entries that JetStream stored. A large batch goes out as one JetStream atomic batch (one ack for all;
nats-server 2.12+); a small one, one the server cannot take atomically, or one that repeats events an unconfirmed
attempt already stored goes message by message with an ack each. A crash between the ack and the delete
republishes them, and JetStream drops the copy by ``Nats-Msg-Id`` within its duplicate window.

Waking the publisher: a write to a partition this replica holds wakes it at once (``SessionStore.outbox_written``);
a write to any other partition sends the core-NATS nudge ``registry.outbox.written`` naming the partitions written
(at most one in flight per replica, so a busy replica sends one per round trip, not one per beacon), which wakes the
replicas holding them. A round reads only the outboxes that may hold entries (written here, named by a nudge, newly
held, or left full by the last round), not every partition held: one event is one outbox read, not 16. A lost nudge
(NATS down, a lease changing hands) costs at most ``outbox_poll_interval_s``: each publisher still polls all its
partitions as a backstop. While
JetStream is unavailable attempts back off up to ``outbox_retry_max_s`` and start again at once on reconnect.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import cast

import structlog
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from shared.keys import JETSTREAM, NATS, NATS_RECONNECTED, REDIS
from shared.messaging import MSG_ID_HEADER, REGISTRY_OUTBOX_WRITTEN
from shared.redis_conn import RedisClient
from shared.tasks import raise_if_cancelled, supervised, wait_event

from .assignment import Assignment
from .keys import SETTINGS, STORE
from .metrics import EVENTS_PUBLISHED, OUTBOX_PENDING
from .settings import Settings
from .store import SessionStore

__all__ = ["OutboxPublisher", "outbox_context"]

log = structlog.get_logger()

# JetStream atomic batch publishing (ADR-50, nats-server 2.12+; the stream needs allow_atomic).
BATCH_ID = "Nats-Batch-Id"
BATCH_SEQUENCE = "Nats-Batch-Sequence"
BATCH_COMMIT = "Nats-Batch-Commit"
# An atomic batch saves the registry ~15-20 µs of CPU per event (no future and no ack to parse per message), while
# the server spends ~10 µs more per event and ~0.5 ms per batch (measured on the benchmark machine). So batches go
# atomically only once there are enough events to make it worth it: when the registry is busy.
ATOMIC_MIN = 32
ATOMIC_MAX = 1000  # the most events JetStream takes in one atomic batch
YIELD_EVERY = 64
ERR_ATOMIC_DISABLED = 10174
ERR_BATCH_DUPLICATE = 10201


Entry = tuple[int, str, dict[str, str]]
"""An outbox entry: its partition, its stream id, its fields (``s`` subject, ``i`` msg id, ``d`` JSON)."""


class PublishFailed(Exception):
    pass


class OutboxPublisher:
    def __init__(
        self, redis: RedisClient, nc: NatsClient, js: JetStreamContext, store: SessionStore, settings: Settings
    ) -> None:
        self._redis = redis
        self._nc = nc
        self._js = js
        self._atomic = True
        self._store = store
        self._outboxes = [store.keys.partition.key(base, "outbox") for base in store.keys.bases()]
        self.assignment = Assignment(redis, store.runner, store.keys, settings.outbox_lease_s)
        self._settings = settings
        self._wake = asyncio.Event()
        """Set by a local write to a held partition and by another replica's nudge."""
        self._dirty: set[int] = set()
        """The partitions the next round reads (see the module docstring); only those held are read."""
        self._looked_at: frozenset[int] = frozenset()
        self._gauge_at = 0.0
        self._reconnected = asyncio.Event()

    async def on_nudge(self, msg: Msg) -> None:
        """Another replica wrote to outboxes: the replica holding them publishes at once."""
        # Only publishing wakes: a nudge is never relayed, or replicas would nudge each other back and forth.
        held = self.assignment.held
        written = _partitions(msg.data)
        named = held if written is None else written & held
        if named:
            self._dirty |= named
            self._wake.set()

    def on_reconnected(self) -> None:
        self._reconnected.set()

    async def release(self) -> None:
        """Hand every partition over at once (at shutdown); if Redis is gone the leases simply expire."""
        await self.assignment.leave()

    async def publish_round(self) -> tuple[int, bool]:
        """Publish the oldest entries of the held partitions that may have some, as one batch; returns (how many
        JetStream stored, whether a partition had more than its share of this batch)."""
        self._wake.clear()
        held = await self.assignment.refresh()
        self._dirty |= held - self._looked_at  # newly held: its last holder may have left a backlog
        self._looked_at = held
        partitions = sorted(self._dirty & held)
        self._dirty.clear()  # before the read: a write committed during it marks its partition again
        if not partitions:
            return 0, False
        try:
            stored, full = await self.publish_batch(partitions)
        except BaseException:
            self._dirty.update(partitions)
            raise
        if full:
            self._dirty.update(partitions)
        if time.monotonic() >= self._gauge_at:
            self._gauge_at = time.monotonic() + 1.0
            async with self._redis.pipeline(transaction=False) as pipe:
                for p in held:
                    pipe.xlen(self._outboxes[p])
                OUTBOX_PENDING.set(sum(await pipe.execute()))
        return stored, full

    async def publish_batch(self, partitions: list[int]) -> tuple[int, bool]:
        """Publish the oldest entries of ``partitions`` together (each its share of ``outbox_batch``).

        One batch for all of them: a replica publishing many partitions pays per round, not per partition (the
        entries of one partition, and so of one session, stay in outbox order). Returns how many JetStream stored
        and whether some partition filled its share (more may be waiting).
        """
        share = max(1, min(self._settings.outbox_batch, ATOMIC_MAX // len(partitions)))
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in partitions:
                pipe.xrange(self._outboxes[p], "-", "+", count=share)
            read = cast(list[list[tuple[str, dict[str, str]]]], await pipe.execute())
        entries = [(p, entry_id, fields) for p, rows in zip(partitions, read, strict=True) for entry_id, fields in rows]
        full = any(len(rows) >= share for rows in read)
        if not entries:
            return 0, False
        if self._atomic and len(entries) >= ATOMIC_MIN and await self._publish_atomic(entries):
            stored = entries
        else:
            stored = await self._publish_each(entries)
        if stored:
            by_partition: dict[int, list[str]] = {}
            for p, entry_id, _ in stored:
                by_partition.setdefault(p, []).append(entry_id)
            async with self._redis.pipeline(transaction=False) as pipe:
                for p, ids in by_partition.items():
                    pipe.xdel(self._outboxes[p], *ids)
                await pipe.execute()
            EVENTS_PUBLISHED.inc(len(stored))
        if len(stored) < len(entries):
            raise PublishFailed(f"{len(entries) - len(stored)} of {len(entries)} events not stored")
        return len(stored), full

    async def _publish_atomic(self, entries: list[Entry]) -> bool:
        """One JetStream atomic batch (nats-server 2.12+): all entries stored with one ack, or none.

        ``False`` when the batch must go message by message instead: it holds an event that an earlier,
        unconfirmed attempt did store (a batch with a duplicate id is refused as a whole), or the server cannot.
        """
        batch_id = uuid.uuid4().hex
        last = len(entries)
        for number, (_, _, fields) in enumerate(entries, 1):
            headers = {MSG_ID_HEADER: fields["i"], BATCH_ID: batch_id, BATCH_SEQUENCE: str(number)}
            if number < last:
                await self._nc.publish(fields["s"], fields["d"].encode(), headers=headers)
                if number % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let beacons in between: a batch is long work for the event loop
                continue
            headers[BATCH_COMMIT] = "1"
            reply = await self._nc.request(
                fields["s"], fields["d"].encode(), headers=headers, timeout=self._settings.publish_timeout_s
            )
        ack = json.loads(reply.data)
        error = ack.get("error")
        if error is None and ack.get("batch") == batch_id and ack.get("count") == last:
            return True
        code = error.get("err_code") if isinstance(error, dict) else None
        if code == ERR_BATCH_DUPLICATE:
            return False
        if code == ERR_ATOMIC_DISABLED or error is None:
            # The stream does not allow atomic batches, or the server ignores them (before 2.12).
            log.warning("outbox_atomic_batches_unavailable", error=error)
            self._atomic = False
            return False
        raise PublishFailed(f"atomic batch refused: {error}")

    async def _publish_each(self, entries: list[Entry]) -> list[Entry]:
        """Publish message by message, each with its own ack; returns each partition's unbroken run stored."""
        pending: list[asyncio.Future[PubAck]] = []
        try:
            for _, _, fields in entries:
                # publish_async sends at once, in order; the acks are awaited together below.
                headers = {MSG_ID_HEADER: fields["i"]}
                pending.append(await self._js.publish_async(fields["s"], fields["d"].encode(), headers=headers))
        except Exception as exc:
            raise_if_cancelled(exc)
            log.warning("outbox_publish_failed", error=repr(exc))
        if pending:
            await asyncio.wait(pending, timeout=self._settings.publish_timeout_s)
        stored: list[Entry] = []
        broken: set[int] = set()
        for entry, future in itertools.zip_longest(entries, pending[: len(entries)]):
            # Only a partition's unbroken run of stored entries is deleted, so a retry keeps its outbox order.
            partition = entry[0]
            if future is None or not future.done() or future.cancelled() or future.exception() is not None:
                broken.add(partition)
            elif partition not in broken:
                stored.append(entry)
        for future in pending:
            future.cancel()
        return stored

    async def wait_for_entries(self, timeout_s: float) -> None:
        # A local write or another replica's nudge wakes us at once; the timeout is the backstop for a lost nudge,
        # after which every held partition is read. (A blocking XREAD would wake for both, but redis-py cannot
        # cancel it cleanly at shutdown.)
        if not await wait_event(self._wake, timeout_s):
            self._dirty |= self.assignment.held

    async def relay(self) -> None:
        """Route each local write: to this replica's publisher if it holds the partition, else as a nudge.

        Writes that happen while a nudge is in flight (sent, not yet confirmed by the server) are covered by the
        next one; every write sets the event after its commit, so the nudge that follows reaches the holder after
        the entry is readable.
        """
        written = self._store.outbox_written
        while True:
            raise_if_cancelled()
            if not await wait_event(written, self._settings.outbox_lease_s):
                continue
            written.clear()
            partitions = set(self._store.written)
            self._store.written.clear()
            held = self.assignment.held
            if local := partitions & held:
                self._dirty |= local
                self._wake.set()
            if others := partitions - held:
                try:
                    await self._nc.publish(REGISTRY_OUTBOX_WRITTEN, ",".join(map(str, sorted(others))).encode())
                    # nats-py takes whole seconds
                    await self._nc.flush(timeout=max(1, round(self._settings.publish_timeout_s)))
                except Exception as exc:  # NATS is down: the holder's poll is the backstop
                    raise_if_cancelled(exc)
                    log.info("outbox_nudge_lost", error=repr(exc))

    async def run(self) -> None:
        lease_s = self._settings.outbox_lease_s
        rate = _Rate()
        delay = 0.05
        while True:
            raise_if_cancelled()
            try:
                published, full = await self.publish_round()
                rate.add(published)
                if not full:
                    # Caught up: wait for more. Under load, let the burst gather into one batch; below the rate, an
                    # event goes out at once (a waiting customer's offer must not wait for a batch to fill).
                    # Back in time to renew the lease, however long the poll interval is set.
                    await self.wait_for_entries(min(self._settings.outbox_poll_interval_s, lease_s / 3))
                    if rate.per_second >= self._settings.outbox_linger_min_rate:
                        await asyncio.sleep(self._settings.outbox_linger_s)
                delay = 0.05
            except Exception as exc:
                raise_if_cancelled(exc)
                log.warning("outbox_retry", error=repr(exc), retry_in_s=delay)
                self._reconnected.clear()
                if await wait_event(self._reconnected, delay):
                    log.info("outbox_retry_on_reconnect")
                delay = min(delay * 2, self._settings.outbox_retry_max_s)


def _partitions(data: bytes) -> set[int] | None:
    """The partitions a nudge names (``3,7``); ``None``, all of them, for a nudge that names none we can read."""
    try:
        return {int(part) for part in data.split(b",")}
    except ValueError:
        return None


class _Rate:
    """Events per second over the last completed window (0.1 s), to tell load from a quiet trickle."""

    def __init__(self, window_s: float = 0.1) -> None:
        self._window_s = window_s
        self._start = time.monotonic()
        self._count = 0
        self.per_second = 0.0

    def add(self, count: int) -> None:
        self._count += count
        elapsed = time.monotonic() - self._start
        if elapsed >= self._window_s:
            self.per_second = self._count / elapsed
            self._start += elapsed
            self._count = 0


async def outbox_context(app: web.Application) -> AsyncIterator[None]:
    publisher = OutboxPublisher(app[REDIS], app[NATS], app[JETSTREAM], app[STORE], app[SETTINGS])
    app[NATS_RECONNECTED].append(publisher.on_reconnected)
    nudges = await app[NATS].subscribe(REGISTRY_OUTBOX_WRITTEN, cb=publisher.on_nudge)
    async with (
        supervised(app, "registry-outbox", publisher.run),
        supervised(app, "registry-outbox-relay", publisher.relay),
    ):
        yield
    try:
        await nudges.unsubscribe()
    except NatsError as exc:  # NATS is gone: the connection's own shutdown has nothing left to unsubscribe
        log.info("outbox_nudges_not_unsubscribed", error=repr(exc))
    await publisher.release()

"""The outbox publisher: atomic batches, and the message-by-message path when a batch cannot be atomic."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import StreamConfig
from structlog.testing import capture_logs

from session_registry.outbox import ATOMIC_MIN, OutboxPublisher
from session_registry.store import SessionStore
from shared.messaging import STREAM, STREAM_SUBJECTS, CreateSession

from .conftest import ev, partition_key

pytestmark = pytest.mark.cluster

EVENTS = ATOMIC_MIN + 1  # enough for an atomic batch: created, then joins and leaves


async def fill_outbox(redis, settings) -> tuple[SessionStore, str]:
    store = SessionStore(redis, settings)
    session = await store.create(CreateSession(customer_id="c1"))
    names = ["agent_joined", "agent_left"] * EVENTS
    await store.apply(session.session_id, "beacon", [ev(name) for name in names[: EVENTS - 1]])
    return store, session.session_id


async def test_a_batch_holding_an_event_stored_before_is_published_one_by_one(
    make_settings, redis, nc: nats.aio.client.Client, events
) -> None:
    settings = make_settings()
    store, session_id = await fill_outbox(redis, settings)
    # An earlier attempt stored the first event but died before its ack: an atomic batch would be refused.
    (_, first), *_ = await redis.xrange(partition_key(session_id, "outbox"))
    js = nc.jetstream()
    await js.publish(first["s"], first["d"].encode(), headers={"Nats-Msg-Id": first["i"]})

    publisher = OutboxPublisher(redis, nc, js, store, settings)
    partition = store.keys.partition_of(session_id)
    assert await publisher.publish_batch([partition]) == (EVENTS, False)
    assert await redis.xlen(partition_key(session_id, "outbox")) == 0
    await events.wait(session_id, "agent_left", EVENTS // 2)
    assert len(events.of(session_id)) == EVENTS

    # the fallback was for that batch only: the next one goes out like any other
    await store.apply(session_id, "beacon", [ev(name) for name in ["agent_joined", "agent_left"] * ATOMIC_MIN])
    assert await publisher.publish_batch([partition]) == (2 * ATOMIC_MIN, False)
    await events.wait(session_id, "agent_left", EVENTS // 2 + ATOMIC_MIN)


async def test_a_stream_without_atomic_batches_gets_messages_one_by_one(
    make_settings, redis, nc: nats.aio.client.Client
) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=STREAM_SUBJECTS))  # no allow_atomic
    settings = make_settings()
    store, session_id = await fill_outbox(redis, settings)
    publisher = OutboxPublisher(redis, nc, js, store, settings)
    with capture_logs() as logs:
        assert await publisher.publish_batch([store.keys.partition_of(session_id)]) == (EVENTS, False)
    assert any(entry["event"] == "outbox_atomic_batches_unavailable" for entry in logs)
    assert (await js.stream_info(STREAM)).state.messages == EVENTS


async def test_one_round_publishes_every_held_partition_in_one_batch_in_order(
    make_settings, redis, nc: nats.aio.client.Client, events
) -> None:
    settings = make_settings(outbox_batch=1000)  # a share of 62 or more per partition: all of it in one round
    store = SessionStore(redis, settings)
    sessions = [(await store.create(CreateSession(customer_id=f"c{i}"))).session_id for i in range(12)]
    for session_id in sessions:
        await store.apply(session_id, "beacon", [ev(name) for name in ["agent_joined", "agent_left"] * 2])
    partitions = sorted({store.keys.partition_of(s) for s in sessions})
    assert len(partitions) > 1
    publisher = OutboxPublisher(redis, nc, nc.jetstream(), store, settings)
    assert await publisher.publish_batch(partitions) == (len(sessions) * 5, False)  # ATOMIC_MIN or more: one batch
    for session_id in sessions:
        await events.wait(session_id, "agent_left", 2)
        assert [e.session.version for e in events.of(session_id)] == [1, 2, 3, 4, 5]
    assert [await redis.xlen(partition_key(s, "outbox")) for s in sessions] == [0] * len(sessions)


async def test_a_partition_taken_over_is_read_in_the_round_that_takes_it(
    make_settings, redis, nc: nats.aio.client.Client, events
) -> None:
    """A round reads the outboxes this replica was told of, and every one it has just come to hold: the last
    holder may have left entries that nobody will announce again."""
    settings = make_settings(outbox_lease_s=0.3)
    writer = SessionStore(redis, settings)  # another replica: this publisher never hears of its writes
    session_id = (await writer.create(CreateSession(customer_id="c1"))).session_id
    partition = writer.keys.partition_of(session_id)
    await redis.set(partition_key(session_id, "lease"), "other-replica", px=60_000)
    publisher = OutboxPublisher(redis, nc, nc.jetstream(), SessionStore(redis, settings), settings)
    assert await publisher.publish_round() == (0, False)
    assert publisher.assignment.held and partition not in publisher.assignment.held

    await redis.delete(partition_key(session_id, "lease"))  # the other replica is gone
    # The assignment tries a partition it missed again a tenth of a lease later: a schedule, no event to await.
    await asyncio.sleep(0.05)
    assert await publisher.publish_round() == (1, False)
    assert partition in publisher.assignment.held
    await events.wait(session_id, "created")

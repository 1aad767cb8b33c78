"""The outbox publisher: atomic batches, and the message-by-message path when a batch cannot be atomic."""

from __future__ import annotations

import nats
from nats.js.api import StreamConfig
from structlog.testing import capture_logs

from session_registry.outbox import OutboxPublisher
from session_registry.store import SessionStore
from shared.messaging import STREAM, STREAM_SUBJECTS, CreateSession

from .conftest import ev


async def outbox_with_two_events(redis, settings) -> tuple[SessionStore, str]:
    store = SessionStore(redis, settings)
    session = await store.create(CreateSession(customer_id="c1"))
    await store.apply(session.session_id, "beacon", [ev("pincode_updated") | {"pin": "424242"}])
    return store, session.session_id


async def test_a_batch_holding_an_event_stored_before_is_published_one_by_one(
    make_settings, redis, nc: nats.aio.client.Client, events
) -> None:
    settings = make_settings()
    store, session_id = await outbox_with_two_events(redis, settings)
    # An earlier attempt stored the first event but died before its ack: an atomic batch would be refused.
    (_, first), *_ = await redis.xrange("reg:outbox")
    js = nc.jetstream()
    await js.publish(first["s"], first["d"].encode(), headers={"Nats-Msg-Id": first["i"]})

    publisher = OutboxPublisher(redis, nc, js, store, settings)
    assert await publisher.publish_batch() == 2
    assert await redis.xlen("reg:outbox") == 0
    await events.wait(session_id, "pin_assigned")
    assert [e.type for e in events.of(session_id)] == ["created", "pin_assigned"]

    # the next batch is atomic again
    await store.apply(session_id, "beacon", [ev("agent_joined")])
    assert await publisher.publish_batch() == 1
    await events.wait(session_id, "agent_joined")


async def test_a_stream_without_atomic_batches_gets_messages_one_by_one(
    make_settings, redis, nc: nats.aio.client.Client
) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=STREAM_SUBJECTS))  # no allow_atomic
    settings = make_settings()
    store, _ = await outbox_with_two_events(redis, settings)
    publisher = OutboxPublisher(redis, nc, js, store, settings)
    with capture_logs() as logs:
        assert await publisher.publish_batch() == 2
    assert any(entry["event"] == "outbox_atomic_batches_unavailable" for entry in logs)
    assert (await js.stream_info(STREAM)).state.messages == 2

"""Contract 3: the notification service cancels a help request with ``registry.sessions.end`` (reason
``cancelled``, by ``customer``): the session ends at once, whatever state it is in; bad reasons are refused."""

from __future__ import annotations

import asyncio

import pytest

from shared.errors import RemoteError
from shared.messaging import REGISTRY_END, EndSession, SessionState, SessionView, Source
from shared.rpc import call

from .conftest import KEYS, ev, partition_key

pytestmark = pytest.mark.cluster

CANCEL = {"reason": "cancelled", "by": "customer"}


@pytest.mark.parametrize("setup", [[], ["pin"], ["pin", "away"], ["pin", "agent"]])
async def test_cancel_ends_the_session_at_once(nc, new_session, events, redis, setup) -> None:
    session = await new_session()
    before = [ev("pincode_updated", {"pinCode": "320001"})] if "pin" in setup else []
    before += [ev("page_hidden", {"reason": "unload"})] if "away" in setup else []
    before += [ev("agent_joined")] if "agent" in setup else []
    if before:
        await session.beacon(*before)
    async with asyncio.timeout(1):  # the deadline: ended/cancelled within 1 s
        view = await call(nc, REGISTRY_END, EndSession(session_id=session.id, **CANCEL), SessionView)
        (ended,) = await events.wait(session.id, "ended")
    assert (view.state, view.ended_reason) == (SessionState.ENDED, "cancelled")
    assert ended.source is Source.API and ended.data == CANCEL
    assert [m for m in await redis.zrange(partition_key(session.id, "timers"), 0, -1) if m.startswith(session.id)] == []
    assert await redis.exists(KEYS.pin("320001")) == 0


async def test_a_second_cancel_changes_nothing(nc, new_session, events) -> None:
    session = await new_session()
    await session.beacon(ev("session_ended", {"reason": "customer_left"}))
    view = await call(nc, REGISTRY_END, EndSession(session_id=session.id, **CANCEL), SessionView)
    assert view.ended_reason == "customer_left"
    await events.wait(session.id, "ended")
    assert len(events.of(session.id, "ended")) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", "Cancelled!"),
        ("reason", ""),
        ("reason", "x" * 65),
        ("reason", "can\ncel"),
        ("by", "x" * 65),
        ("by", "customer\n{}"),
        ("by", "ünïcode"),
    ],
)
async def test_end_refuses_unbounded_reasons_and_authors(nc, new_session, redis, field, value) -> None:
    session = await new_session()
    request = EndSession(session_id=session.id, **{**CANCEL, field: value})
    with pytest.raises(RemoteError) as info:
        await call(nc, REGISTRY_END, request, SessionView)
    assert (info.value.status, info.value.code) == (400, "validation_failed")
    assert await redis.hget(KEYS.session(session.id), "state") == "created"


async def test_cancelling_an_unknown_session_is_a_404(nc, client) -> None:
    with pytest.raises(RemoteError) as info:
        await call(nc, REGISTRY_END, EndSession(session_id="f" * 32, **CANCEL), SessionView)
    assert (info.value.status, info.value.code) == (404, "session_not_found")

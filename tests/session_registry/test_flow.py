from __future__ import annotations

import nats
import pytest

from shared.messaging import REGISTRY_GET, REGISTRY_RESOLVE_PIN, ResolvePin, SessionRef, SessionState, SessionView
from shared.rpc import call

from .conftest import ev

pytestmark = pytest.mark.cluster


async def test_whole_flow_create_pin_resolve_join_end(nc: nats.aio.client.Client, events, new_session) -> None:
    session = await new_session(queue="billing", priority=3)
    assert session.created.session.state is SessionState.CREATED
    assert session.created.session.queue == "billing" and session.created.session.priority == 3
    await events.wait(session.id, "created")

    assert await session.beacon(ev("session_started"), ev("pincode_updated", {"pinCode": "123456"})) == {
        "accepted": 2,
        "duplicates": 0,
        "ignored": 0,
        "state": "waiting",
        "rejected": [],
    }
    (assigned,) = await events.wait(session.id, "pin_assigned")
    assert assigned.prev_state is SessionState.CREATED and assigned.session.state is SessionState.WAITING
    assert assigned.session.pin == "123456"

    found = await call(nc, REGISTRY_RESOLVE_PIN, ResolvePin(pin="123456", agent_id="a1"), SessionView)
    assert found.session_id == session.id

    await session.beacon(ev("agent_joined"))
    (joined,) = await events.wait(session.id, "agent_joined")
    assert joined.session.state is SessionState.ACTIVE and joined.session.agents == 1

    await session.beacon(ev("session_ended"))
    (ended,) = await events.wait(session.id, "ended")
    assert ended.prev_state is SessionState.ACTIVE and ended.session.state is SessionState.ENDED
    view = await call(nc, REGISTRY_GET, SessionRef(session_id=session.id), SessionView)
    assert view.state is SessionState.ENDED and view.ended_reason == "ended_in_sdk"
    assert [e.type for e in events.of(session.id)] == [
        "created",
        "session_started",
        "pin_assigned",
        "agent_joined",
        "ended",
    ]
    assert events.msg_ids[-1] == ended.event_id

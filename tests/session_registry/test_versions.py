"""Contract 1: every SessionEvent the scripts build is exactly the shared schema, and its ``session.version`` is one
higher than the session's previous event, on every path that publishes one."""

from __future__ import annotations

import pytest
from pydantic import ConfigDict

from shared.messaging import REGISTRY_END, REGISTRY_GET, EndSession, SessionEvent, SessionRef, SessionView
from shared.rpc import call

from .conftest import ev, open_session
from .test_pins import resolve_error
from .test_timers import CASES
from .test_webhooks import post, zoom

pytestmark = pytest.mark.cluster


class StrictView(SessionView):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StrictEvent(SessionEvent):
    """The shared schema with no field to spare: a field Lua adds and the contract lacks fails here."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    session: StrictView


def assert_contract(events, session_id: str) -> list[StrictEvent]:
    strict = [StrictEvent.model_validate_json(raw) for raw in events.raw_of(session_id)]
    assert [e.session.version for e in strict] == list(range(1, len(strict) + 1))
    return strict


async def test_every_beacon_event_kind_is_versioned_in_order(new_session, events) -> None:
    session = await new_session()
    await session.beacon(
        ev("pincode_updated", {"pinCode": "310001"}),
        ev("session_started"),
        ev("agent_joined"),
        ev("session_error", {"code": 1011}),
        ev("remote_assist_started"),
        ev("remote_assist_stopped"),
        ev("unknown_sdk_event", {"original_name": "annotation_added"}),
        ev("pincode_updated", {"pinCode": "310002"}),
    )
    await session.beacon(ev("page_hidden", {"reason": "unload"}))
    await session.beacon(ev("page_visible"))
    await session.beacon(ev("agent_left"))
    await session.beacon(ev("session_ended"))
    await events.wait(session.id, "ended")
    types = [e.type for e in assert_contract(events, session.id)]
    assert types == [
        "created",
        "pin_assigned",
        "session_started",
        "agent_joined",
        "error",
        "remote_assist_started",
        "remote_assist_stopped",
        "sdk_event",
        "pin_changed",
        "reconnecting",
        "resumed",
        "agent_left",
        "ended",
    ]


async def test_webhook_events_and_pin_conflicts_are_versioned(client, new_session, events) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "310003"}))
    for kind, role in [("joined", "customer"), ("joined", "agent"), ("left", "agent"), ("left", "customer")]:
        await post(
            client, zoom(f"cobrowse.session_user_{kind}", session_id="zv1", session_pin="310003", role_type=role)
        )
    other = await new_session()
    await other.beacon(ev("pincode_updated", {"pinCode": "310003"}))  # held by the first: pin_conflict
    await post(client, zoom("cobrowse.session_ended", session_id="zv1", session_pin="310003"))
    await events.wait(session.id, "ended")
    await events.wait(other.id, "pin_conflict")
    assert [e.type for e in assert_contract(events, session.id)][2:] == [
        "customer_joined",
        "agent_joined",
        "agent_left",
        "customer_left",
        "ended",
    ]
    assert [e.type for e in assert_contract(events, other.id)] == ["created", "pin_conflict"]


async def test_an_api_end_is_versioned(nc, new_session, events) -> None:
    session = await new_session()
    await call(nc, REGISTRY_END, EndSession(session_id=session.id, reason="cancelled", by="customer"), SessionView)
    await events.wait(session.id, "ended")
    assert [(e.type, e.session.version) for e in assert_contract(events, session.id)] == [("created", 1), ("ended", 2)]


@pytest.mark.parametrize("kind", list(CASES))
async def test_each_timer_is_versioned(kind, start_registry, nc, events) -> None:
    durations, steps, _, _ = CASES[kind]
    registry = await start_registry(**durations)
    session = await open_session(nc, registry)
    beacons = [ev("pincode_updated", {"pinCode": "310004"}) if s == "pin" else ev(s) for s in steps]
    if beacons:
        await session.beacon(*beacons)
    (ended,) = await events.wait(session.id, "ended")
    assert assert_contract(events, session.id)[-1].session.version == ended.session.version
    if kind == "heartbeat":
        assert [e.type for e in events.of(session.id)][-2:] == ["reconnecting", "ended"]


async def test_a_retired_pin_is_versioned(nc, start_registry, events) -> None:
    registry = await start_registry(pin_miss_limit=1)
    session = await open_session(nc, registry)
    await session.beacon(ev("pincode_updated", {"pinCode": "310005"}))
    await resolve_error(nc, "310099")
    await events.wait(session.id, "pin_retired")
    assert [e.type for e in assert_contract(events, session.id)] == ["created", "pin_assigned", "pin_retired"]


async def test_views_carry_the_version_of_the_last_event(nc, new_session, events) -> None:
    session = await new_session()
    assert session.created.session.version == 1
    await session.beacon(ev("pincode_updated", {"pinCode": "310006"}), ev("heartbeat"), ev("agent_joined"))
    view = await call(nc, REGISTRY_GET, SessionRef(session_id=session.id), SessionView)
    await events.wait(session.id, "agent_joined")
    assert view.version == events.of(session.id)[-1].session.version == 3


async def test_a_pin_retired_when_its_own_lookup_finds_the_bucket_hot_is_versioned(nc, start_registry, events) -> None:
    registry = await start_registry(pin_miss_limit=1)
    await resolve_error(nc, "310199")  # the bucket is hot before any PIN of it is live
    session = await open_session(nc, registry, custom_pin="310100")  # a BYOP create, too
    await session.beacon(ev("pincode_updated", {"pinCode": "310100"}))
    assert await resolve_error(nc, "310100") == (409, "pin_retired")  # retired by the lookup's partition step
    await events.wait(session.id, "pin_retired")
    assert [e.type for e in assert_contract(events, session.id)] == ["created", "pin_assigned", "pin_retired"]

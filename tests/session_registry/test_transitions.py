"""Every transition of the state machine, each published with its source and recorded in the history."""

from __future__ import annotations

import nats
import pytest

from shared.messaging import REGISTRY_END, EndSession, SessionState, SessionView, Source
from shared.rpc import call

from .conftest import KEYS, ev, every_partition, open_session

pytestmark = pytest.mark.cluster

CREATED, WAITING, ACTIVE, RECONNECTING, ENDED = (
    SessionState.CREATED,
    SessionState.WAITING,
    SessionState.ACTIVE,
    SessionState.RECONNECTING,
    SessionState.ENDED,
)


async def test_created_waiting_active_waiting(new_session, events) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "100001"}))
    await session.beacon(ev("agent_joined"))
    await session.beacon(ev("agent_joined"))
    await session.beacon(ev("agent_left"))
    await session.beacon(ev("agent_left"))
    left = await events.wait(session.id, "agent_left", 2)
    steps = [(e.type, e.prev_state, e.session.state, e.session.agents) for e in events.of(session.id)[1:]]
    assert steps == [
        ("pin_assigned", CREATED, WAITING, 0),
        ("agent_joined", WAITING, ACTIVE, 1),
        ("agent_joined", ACTIVE, ACTIVE, 2),
        ("agent_left", ACTIVE, ACTIVE, 1),
        ("agent_left", ACTIVE, WAITING, 0),
    ]
    assert all(e.source is Source.BEACON for e in left)


AWAY = {
    "session_reconnecting": ("session_reconnecting", {}),
    "unload": ("page_hidden", {"reason": "unload"}),
    "bfcache": ("page_hidden", {"reason": "bfcache"}),
}
BACK = {
    "page_visible": {},
    "session_started": {},
    "heartbeat": {},
    "pincode_updated": {"pinCode": "100002"},
}


@pytest.mark.parametrize("away", list(AWAY))
@pytest.mark.parametrize("back", list(BACK))
async def test_active_reconnecting_and_back(new_session, events, away, back) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "100002"}), ev("agent_joined"))
    name, payload = AWAY[away]
    await session.beacon(ev(name, payload))
    (gone,) = await events.wait(session.id, "reconnecting")
    assert (gone.prev_state, gone.session.state, gone.data) == (ACTIVE, RECONNECTING, {"cause": name})
    assert gone.session.customers == 0
    await session.beacon(ev(back, BACK[back]))
    (resumed,) = await events.wait(session.id, "resumed")
    assert (resumed.prev_state, resumed.session.state, resumed.data) == (RECONNECTING, ACTIVE, {"cause": back})


async def test_a_tab_merely_hidden_changes_no_state(new_session, events, redis) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "100007"}), ev("page_hidden", {"reason": "hidden"}))
    await session.beacon(ev("session_error", {"code": 1}))  # a marker: everything before it is published
    await events.wait(session.id, "error")
    assert [e.type for e in events.of(session.id)] == ["created", "pin_assigned", "error"]
    assert await redis.hget(KEYS.session(session.id), "state") == "waiting"


async def test_a_late_page_hidden_does_not_put_a_beating_page_away(new_session, events, redis) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "100008"}, seq=1))
    hidden = ev("page_hidden", {"reason": "unload"}, seq=2)
    await session.beacon(ev("heartbeat", seq=3))
    body = await session.beacon(hidden)
    assert body["ignored"] == 1 and await redis.hget(KEYS.session(session.id), "state") == "waiting"
    # and a heartbeat older than the unload does not bring the page back
    older_beat = ev("heartbeat", seq=4)
    await session.beacon(ev("page_hidden", {"reason": "unload"}, seq=5))
    await session.beacon(older_beat)
    assert await redis.hget(KEYS.session(session.id), "state") == "reconnecting"


async def test_a_returning_page_can_resume_and_change_its_pin_in_one_event(new_session, events) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "100009"}), ev("page_hidden", {"reason": "unload"}))
    await session.beacon(ev("pincode_updated", {"pinCode": "100010"}))
    (changed,) = await events.wait(session.id, "pin_changed")
    steps = [(e.type, e.session.state) for e in events.of(session.id)[-2:]]
    assert steps == [("resumed", WAITING), ("pin_changed", WAITING)]
    assert changed.session.pin == "100010"


async def test_a_page_hidden_before_its_pin_returns_to_created(new_session, events) -> None:
    session = await new_session()
    await session.beacon(ev("page_hidden"))
    await session.beacon(ev("page_visible"))
    (resumed,) = await events.wait(session.id, "resumed")
    assert (resumed.prev_state, resumed.session.state) == (RECONNECTING, CREATED)


@pytest.mark.parametrize("setup", [[], ["pin"], ["pin", "agent"], ["pin", "away"]])
async def test_every_live_state_can_end(new_session, events, setup) -> None:
    session = await new_session()
    before = [ev("pincode_updated", {"pinCode": "100003"})] if "pin" in setup else []
    before += [ev("agent_joined")] if "agent" in setup else []
    before += [ev("page_hidden")] if "away" in setup else []
    if before:
        await session.beacon(*before)
    expected = {(): CREATED, ("pin",): WAITING, ("pin", "agent"): ACTIVE, ("pin", "away"): RECONNECTING}[tuple(setup)]
    await session.beacon(ev("session_ended"))
    (ended,) = await events.wait(session.id, "ended")
    assert (ended.prev_state, ended.session.state, ended.data["reason"]) == (expected, ENDED, "ended_in_sdk")
    assert ended.session.pin is None or ended.session.pin == "100003"


async def test_events_without_a_transition_are_recorded(new_session, events) -> None:
    session = await new_session()
    await session.beacon(
        ev("pincode_updated", {"pinCode": "100004"}),
        ev("session_error", {"code": 1011}),
        ev("remote_assist_started"),
        ev("remote_assist_started"),
        ev("remote_assist_stopped"),
        ev("unknown_sdk_event", {"original_name": "annotation_added"}),
        ev("heartbeat"),
        ev("page_visible"),
    )
    await events.wait(session.id, "sdk_event")
    kinds = [(e.type, e.data) for e in events.of(session.id)[2:]]
    assert kinds == [
        ("error", {"code": "1011"}),
        ("remote_assist_started", {}),
        ("remote_assist_stopped", {}),
        ("sdk_event", {"original_name": "annotation_added"}),
    ]
    assert all(e.session.state is WAITING for e in events.of(session.id)[2:])


async def test_end_over_nats_is_idempotent_and_sourced_api(nc: nats.aio.client.Client, new_session, events) -> None:
    session = await new_session()
    request = EndSession(session_id=session.id, reason="ended_by_supervisor", by="sup1")
    view = await call(nc, REGISTRY_END, request, SessionView)
    assert view.state is ENDED and view.ended_reason == "ended_by_supervisor"
    again = await call(nc, REGISTRY_END, request.model_copy(update={"reason": "other"}), SessionView)
    assert again.ended_reason == "ended_by_supervisor"
    (ended,) = await events.wait(session.id, "ended")
    assert ended.source is Source.API and ended.data == {"reason": "ended_by_supervisor", "by": "sup1"}


async def test_a_session_ended_beacon_may_name_its_reason(new_session, events) -> None:
    session = await new_session()
    await session.beacon(ev("session_ended", {"reason": "customer_left"}))
    (ended,) = await events.wait(session.id, "ended")
    assert ended.session.ended_reason == "customer_left"
    other = await new_session()
    await other.beacon(ev("session_ended", {"reason": "Not A Reason!"}))
    (ended,) = await events.wait(other.id, "ended")
    assert ended.session.ended_reason == "ended_in_sdk"


async def test_keys_live_for_the_session_ttl_then_for_the_retention(start_registry, nc, redis) -> None:
    registry = await start_registry(session_ttl_s=600, ended_retention_s=3600)
    session = await open_session(nc, registry)
    await session.beacon(ev("pincode_updated", {"pinCode": "100005"}))
    keys = [KEYS.session(session.id), KEYS.history(session.id), KEYS.pin("100005")]
    assert all(0 < ttl <= 600_000 for ttl in [await redis.pttl(key) for key in keys])
    await session.beacon(ev("session_ended"))
    assert all(600_000 < ttl <= 3_600_000 for ttl in [await redis.pttl(key) for key in keys[:2]])
    assert await redis.exists(KEYS.pin("100005")) == 0


async def test_every_key_but_the_shared_structures_has_a_lifetime(client, nc, new_session, redis) -> None:
    from .test_pins import resolve_error
    from .test_webhooks import post, zoom

    live = await new_session(custom_pin="ttl1")
    await live.beacon(ev("pincode_updated", {"pinCode": "TTL1"}), ev("agent_joined"), ev("page_hidden"))
    ended = await new_session()
    await ended.beacon(ev("pincode_updated", {"pinCode": "100006"}), ev("session_ended"))
    await post(client, zoom("cobrowse.session_user_joined", session_id="zs-ttl", session_pin="TTL1", role_type="agent"))
    await resolve_error(nc, "999999")
    shared = {*every_partition("timers"), *every_partition("index"), *every_partition("outbox")}
    forever = [key async for key in redis.scan_iter("reg:*") if key not in shared and await redis.pttl(key) < 0]
    assert forever == []

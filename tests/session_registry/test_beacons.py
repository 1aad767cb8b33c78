"""POST /beacons: input checks, dedupe, atomic batches, out-of-order events, PIN rules, participant limits."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from shared.messaging import SessionState

from .conftest import KEYS, SESSION_SECRET, ev


async def history(client: TestClient, redis: Redis, session_id: str) -> list[dict]:
    return [json.loads(row) for row in await redis.lrange(KEYS.history(session_id), 0, -1)]


async def state(redis: Redis, session_id: str) -> str:
    return str(await redis.hget(KEYS.session(session_id), "state"))


@pytest.mark.cluster
async def test_text_plain_beacon_as_send_beacon_posts_it(client, new_session, redis) -> None:
    session = await new_session()
    body = json.dumps(
        {"session_id": session.id, "token": session.token, "event": ev("pincode_updated", {"pincode": "ab12"})}
    )
    response = await client.post("/beacons", data=body, headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert response.status == 202
    assert await response.json() == {"accepted": 1, "duplicates": 0, "ignored": 0, "state": "waiting", "rejected": []}
    assert await redis.hget(KEYS.session(session.id), "pin") == "AB12"


@pytest.mark.cluster
async def test_duplicate_event_ids_are_applied_once(new_session, redis) -> None:
    session = await new_session()
    joined = ev("agent_joined")
    await session.beacon(ev("pincode_updated", {"pinCode": "111111"}), joined)
    assert await session.beacon(joined, joined) == {
        "accepted": 0,
        "duplicates": 2,
        "ignored": 0,
        "state": "active",
        "rejected": [],
    }
    assert await redis.hget(KEYS.session(session.id), "aj_b") == "1"


@pytest.mark.cluster
async def test_an_unknown_event_is_rejected_by_index_and_the_rest_applied(client, new_session, redis) -> None:
    session = await new_session()
    body = await session.beacon(ev("pincode_updated", {"pinCode": "222222"}), ev("agent_teleported"))
    assert body["accepted"] == 1 and body["state"] == "waiting"
    assert body["rejected"] == [{"index": 1, "property": "events.1.name", "reason": "unknown event 'agent_teleported'"}]
    assert [h["type"] for h in await history(client, redis, session.id)] == ["created", "pin_assigned"]


@pytest.mark.cluster
async def test_a_batch_of_only_bad_events_is_refused_naming_each(client, new_session, redis) -> None:
    session = await new_session()
    body = await session.beacon(ev("agent_teleported"), ev("agent_vanished"), expect=400)
    assert body["error"]["code"] == "unknown_event"
    assert [e["property"] for e in body["errors"]] == ["events.0.name", "events.1.name"]
    mixed = await session.beacon(ev("agent_teleported"), ev("pincode_updated", {"pinCode": "1-2"}), expect=400)
    assert mixed["error"]["code"] == "validation_failed"
    assert [e["property"] for e in mixed["errors"]] == ["events.0.name", "events.1.payload.pinCode"]
    assert await state(redis, session.id) == "created"
    assert [h["type"] for h in await history(client, redis, session.id)] == ["created"]


@pytest.mark.cluster
async def test_missing_fields_are_named(new_session) -> None:
    session = await new_session()
    body = await session.beacon({"name": "heartbeat", "payload": {}}, expect=400)
    assert body["error"]["code"] == "validation_failed"
    assert {e["property"] for e in body["errors"]} == {"events.0.id", "events.0.ts", "events.0.seq"}
    body = await session.client.post("/beacons", json={"token": session.token, "events": [ev("heartbeat")]})
    assert body.status == 400 and (await body.json())["errors"][0]["property"] == "session_id"
    empty = await session.beacon(expect=400)
    assert empty["errors"][0]["property"] == "events"


@pytest.mark.cluster
async def test_a_batch_with_bad_events_applies_the_good_ones(new_session, redis, events) -> None:
    session = await new_session()
    good = [ev("pincode_updated", {"pinCode": "222333"}), ev("agent_joined"), ev("agent_joined")]
    body = await session.beacon(
        good[0],
        ev("pincode_updated", {"pinCode": "12-34"}),
        good[1],
        ev("unknown_sdk_event", {}),
        {"name": "heartbeat", "payload": {}},
        ev("heartbeat") | {"ts": -1},
        "not an event",
        good[2],
    )
    assert (body["accepted"], body["state"]) == (3, "active")
    assert [(r["index"], r["property"]) for r in body["rejected"]] == [
        (1, "events.1.payload.pinCode"),
        (3, "events.3.payload.original_name"),
        (4, "events.4.id"),
        (4, "events.4.ts"),
        (4, "events.4.seq"),
        (5, "events.5.ts"),
        (6, "events.6"),
    ]
    assert await redis.hget(KEYS.session(session.id), "aj_b") == "2"
    await events.wait(session.id, "agent_joined", 2)
    # the page resends the whole batch: the good ones are duplicates now, the bad ones are refused again
    again = await session.beacon(good[0], ev("agent_teleported"), good[1])
    assert (again["accepted"], again["duplicates"], [r["index"] for r in again["rejected"]]) == (0, 2, [1])


@pytest.mark.cluster
async def test_credentials_sessions_sizes_and_media_types(client, new_session, make_settings) -> None:
    session = await new_session()
    other = await new_session()
    bad = await client.post(
        "/beacons", json={"session_id": session.id, "token": other.token, "events": [ev("heartbeat")]}
    )
    assert bad.status == 403 and (await bad.json())["error"]["code"] == "bad_session_token"

    from shared.session_tokens import sign_session_token

    ghost = "f" * 32
    token = sign_session_token(SESSION_SECRET.encode(), ghost)
    missing = await client.post("/beacons", json={"session_id": ghost, "token": token, "events": [ev("heartbeat")]})
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "session_not_found"

    huge = await session.beacon(ev("heartbeat", {"junk": "x" * 70_000}), expect=413)
    assert huge["error"]["code"] == "payload_too_large"

    form = await client.post("/beacons", data="a=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 415
    garbage = await client.post("/beacons", data=b"\xff{not json", headers={"Content-Type": "text/plain"})
    assert garbage.status == 400 and (await garbage.json())["error"]["code"] == "malformed_json"
    too_many = await session.beacon(*[ev("heartbeat") for _ in range(101)], expect=400)
    assert too_many["errors"][0]["property"] == "events"


@pytest.mark.cluster
async def test_bad_input_never_causes_a_5xx(client, new_session) -> None:
    session = await new_session()
    weird_bodies = [
        b"[]",
        b"null",
        b'"text"',
        b"{}",
        json.dumps({"session_id": session.id, "token": session.token, "events": "nope"}).encode(),
        json.dumps({"session_id": session.id, "token": session.token, "events": [None, 1, "x"]}).encode(),
        json.dumps({"session_id": "../../etc", "token": "v1.x.y", "events": [ev("heartbeat")]}).encode(),
        json.dumps({"session_id": session.id, "token": None, "events": [ev("heartbeat")]}).encode(),
        json.dumps(
            {"session_id": session.id, "token": session.token, "events": [ev("heartbeat") | {"ts": -1}]}
        ).encode(),
        json.dumps(
            {"session_id": session.id, "token": session.token, "events": [ev("heartbeat") | {"seq": 10**300}]}
        ).encode(),
        json.dumps(
            {"session_id": session.id, "token": session.token, "events": [ev("heartbeat") | {"ts": 1e300}]}
        ).encode(),
        json.dumps(
            {"session_id": session.id, "token": session.token, "events": [ev("heartbeat") | {"id": "a b"}]}
        ).encode(),
        json.dumps(
            {"session_id": session.id, "token": session.token, "events": [ev("session_error", {"code": {"x": 1}})]}
        ).encode(),
    ]
    for body in weird_bodies:
        response = await client.post("/beacons", data=body, headers={"Content-Type": "application/json"})
        assert 200 <= response.status < 500, (body, response.status)
        if response.status >= 400:
            assert "error" in await response.json()


@pytest.mark.cluster
async def test_session_ended_is_final_and_late_events_are_recorded_as_ignored(
    client, new_session, redis, events
) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "333333"}, seq=1))
    await session.beacon(ev("session_ended", seq=3))
    assert await session.beacon(ev("agent_joined", seq=2), ev("page_visible", seq=4)) == {
        "accepted": 2,
        "duplicates": 0,
        "ignored": 2,
        "state": "ended",
        "rejected": [],
    }
    assert await state(redis, session.id) == "ended"
    entries = await history(client, redis, session.id)
    assert [(h["type"], h.get("ignored")) for h in entries[-2:]] == [
        ("agent_joined", "session_ended"),
        ("page_visible", "session_ended"),
    ]
    await events.wait(session.id, "ended")
    assert not events.of(session.id, "agent_joined")


@pytest.mark.cluster
async def test_agent_left_before_joined_leaves_no_agent_behind(new_session, redis) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "444444"}, seq=1))
    await session.beacon(ev("agent_left", seq=3))
    await session.beacon(ev("agent_joined", seq=2))
    assert await state(redis, session.id) == "waiting"


@pytest.mark.cluster
async def test_stale_page_events_do_not_undo_newer_ones(client, new_session, redis) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "555555"}, seq=1))
    hidden = ev("page_hidden", seq=2)
    visible = ev("page_visible", seq=3)
    visible["ts"] = hidden["ts"] + 1
    await session.beacon(visible)
    await session.beacon(hidden)
    assert await state(redis, session.id) == "waiting"
    assert (await history(client, redis, session.id))[-1]["ignored"] == "stale"
    old_pin = ev("pincode_updated", {"pinCode": "999999"}, seq=0)
    old_pin["ts"] = 0
    await session.beacon(old_pin)
    assert await redis.hget(KEYS.session(session.id), "pin") == "555555"


@pytest.mark.cluster
async def test_a_live_pin_belongs_to_one_session(client, new_session, redis, events) -> None:
    first = await new_session()
    second = await new_session()
    await first.beacon(ev("pincode_updated", {"pinCode": "abc123"}))
    body = await second.beacon(ev("pincode_updated", {"pinCode": "ABC123"}))
    assert body["ignored"] == 1
    assert await redis.hget(KEYS.pin("ABC123"), "sid") == first.id
    assert await state(redis, second.id) == "created"
    (conflict,) = await events.wait(second.id, "pin_conflict")
    assert conflict.data == {"pin": "ABC123"}
    # once the first session ends its PIN is free again
    await first.beacon(ev("session_ended"))
    await second.beacon(ev("pincode_updated", {"pinCode": "abc123"}))
    assert await redis.hget(KEYS.pin("ABC123"), "sid") == second.id


@pytest.mark.cluster
async def test_pin_change_moves_the_index(new_session, redis, events) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "111000"}))
    await session.beacon(ev("pincode_updated", {"pinCode": "222000"}))
    assert await redis.hget(KEYS.pin("111000"), "sid") is None
    assert await redis.hget(KEYS.pin("222000"), "sid") == session.id
    (changed,) = await events.wait(session.id, "pin_changed")
    assert changed.data == {"pin": "222000", "previous": "111000"}


@pytest.mark.cluster
async def test_at_most_five_agents_per_session(client, new_session, redis) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "666666"}), *[ev("agent_joined") for _ in range(5)])
    body = await session.beacon(ev("agent_joined"))
    assert body["ignored"] == 1
    assert (await history(client, redis, session.id))[-1]["ignored"] == "agent_limit"
    await session.beacon(ev("agent_left"), ev("agent_joined"))
    assert await redis.hget(KEYS.session(session.id), "aj_b") == "6"


@pytest.mark.cluster
async def test_the_registry_never_invents_a_pin(new_session, redis) -> None:
    session = await new_session()
    await session.beacon(ev("session_started"), ev("agent_joined"), ev("heartbeat"))
    assert await redis.hget(KEYS.session(session.id), "pin") is None
    assert await state(redis, session.id) == SessionState.CREATED


# One Redis only: it reads that server's SLOWLOG.
async def test_a_beacon_batch_costs_one_script_and_a_new_pin_one_more(new_session, redis) -> None:
    warm = await new_session()
    # loads the scripts into this Redis (the fixture flushed them)
    await warm.beacon(ev("pincode_updated", {"pinCode": "131313"}), ev("heartbeat"))
    session = await new_session()
    await redis.config_set("slowlog-log-slower-than", 0)  # log every command with its arguments
    await redis.slowlog_reset()
    await session.beacon(*[ev("agent_joined") for _ in range(9)])
    plain = await redis.slowlog_get(1000)
    await redis.slowlog_reset()
    await session.beacon(ev("pincode_updated", {"pinCode": "121212"}), *[ev("agent_joined") for _ in range(9)])
    with_pin = await redis.slowlog_get(1000)
    await redis.config_set("slowlog-log-slower-than", 10000)

    # Background loops (timers, outbox) run meanwhile, but no command of theirs names this session.
    # Commands a script runs are logged too, without a client address.
    def mine(logged: list[dict]) -> list[bytes]:
        return [e["command"] for e in logged if session.id.encode() in e["command"] and e["client_address"] != b"?:0"]

    assert len(mine(plain)) == 1 and mine(plain)[0].startswith(b"EVALSHA")
    # The PIN is claimed in its own slot first (a step of its own), then the batch is applied.
    assert len(mine(with_pin)) == 2 and all(command.startswith(b"EVALSHA") for command in mine(with_pin))
    assert b"reg:{pin:1212}" in mine(with_pin)[-1] and b"reg:{p" in mine(with_pin)[0]


@pytest.mark.cluster
async def test_any_site_may_read_beacon_answers_errors_included(client, new_session) -> None:
    session = await new_session()
    origin = {"Origin": "https://shop.example"}
    ok = await client.post(
        "/beacons", json={"session_id": session.id, "token": session.token, "event": ev("heartbeat")}, headers=origin
    )
    bad = await client.post(
        "/beacons", json={"session_id": session.id, "token": "v1.x.y", "event": ev("heartbeat")}, headers=origin
    )
    assert (ok.status, bad.status) == (202, 403)
    assert ok.headers["Access-Control-Allow-Origin"] == bad.headers["Access-Control-Allow-Origin"] == "*"
    staff = await client.get("/sessions", headers=origin)
    assert "Access-Control-Allow-Origin" not in staff.headers


@pytest.mark.cluster
async def test_a_lone_surrogate_in_an_event_is_a_bad_request_not_a_500(client, new_session, redis) -> None:
    # The escape passed the event-by-event parse, then Redis's Lua JSON decoder failed on it: a 500 for any page.
    session = await new_session()
    events = [ev("pincode_updated", {"pinCode": "333333"}), ev("unknown_sdk_event", {"original_name": "x\ud800"})]
    body = json.dumps({"session_id": session.id, "token": session.token, "events": [*events, ev("agent_teleported")]})
    response = await client.post("/beacons", data=body, headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "malformed_json"
    assert await state(redis, session.id) == SessionState.CREATED.value

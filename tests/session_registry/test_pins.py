"""registry.pins.resolve and BYOP PINs: live sessions only, agent limit, per-bucket miss limit retiring PINs."""

from __future__ import annotations

import asyncio

import nats
import pytest

from shared.errors import RemoteError
from shared.messaging import REGISTRY_RESOLVE_PIN, ResolvePin, SessionView
from shared.rpc import call

from .conftest import KEYS, ev, open_session

pytestmark = pytest.mark.cluster


async def resolve(nc: nats.aio.client.Client, pin: str) -> SessionView:
    return await call(nc, REGISTRY_RESOLVE_PIN, ResolvePin(pin=pin, agent_id="agent-1"), SessionView)


async def resolve_error(nc: nats.aio.client.Client, pin: str) -> tuple[int, str]:
    with pytest.raises(RemoteError) as info:
        await resolve(nc, pin)
    return info.value.status, info.value.code


async def test_only_live_sessions_with_a_pin_resolve(nc, new_session) -> None:
    session = await new_session()
    assert await resolve_error(nc, "900001") == (404, "pin_not_found")
    await session.beacon(ev("pincode_updated", {"pinCode": "abc900"}))
    assert (await resolve(nc, "ABC900")).session_id == session.id
    assert (await resolve(nc, "abc900")).session_id == session.id
    await session.beacon(ev("session_ended"))
    assert await resolve_error(nc, "ABC900") == (404, "pin_not_found")
    assert await resolve_error(nc, "no-pin!") == (400, "validation_failed")


async def test_a_full_session_does_not_resolve(nc, new_session) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "900002"}), *[ev("agent_joined") for _ in range(4)])
    assert (await resolve(nc, "900002")).agents == 4
    await session.beacon(ev("agent_joined"))
    assert await resolve_error(nc, "900002") == (409, "agent_limit")


async def test_misses_in_a_bucket_retire_its_live_pins(nc, start_registry, events) -> None:
    registry = await start_registry(pin_miss_limit=3)
    session = await open_session(nc, registry)
    neighbour = await open_session(nc, registry)
    await session.beacon(ev("pincode_updated", {"pinCode": "123456"}))
    await neighbour.beacon(ev("pincode_updated", {"pinCode": "123999"}))
    assert await resolve_error(nc, "123400") == (404, "pin_not_found")
    assert await resolve_error(nc, "123401") == (404, "pin_not_found")
    assert (await resolve(nc, "123456")).session_id == session.id  # hits are no misses
    assert await resolve_error(nc, "123402") == (404, "pin_not_found")  # third miss in bucket 1234
    (retired,) = await events.wait(session.id, "pin_retired")
    assert retired.session.pin_retired and retired.data == {"pin": "123456"}
    assert await resolve_error(nc, "123456") == (409, "pin_retired")
    assert (await resolve(nc, "123999")).session_id == neighbour.id  # another bucket
    # a new PIN from the SDK is usable again
    await session.beacon(ev("pincode_updated", {"pinCode": "555000"}))
    assert (await resolve(nc, "555000")).session_id == session.id


async def test_a_pin_reported_in_a_hot_bucket_is_retired_at_lookup(nc, start_registry) -> None:
    registry = await start_registry(pin_miss_limit=2)
    for guess in ("440000", "440001"):
        await resolve_error(nc, guess)
    session = await open_session(nc, registry)
    await session.beacon(ev("pincode_updated", {"pinCode": "440077"}))
    assert await resolve_error(nc, "440077") == (409, "pin_retired")


async def test_byop_pins_are_reserved_upper_cased_and_unique(nc, new_session) -> None:
    session = await new_session(custom_pin="myPin42")
    assert await resolve_error(nc, "MYPIN42") == (404, "pin_not_ready")
    with pytest.raises(RemoteError) as info:
        await new_session(custom_pin="MYPIN42")
    assert (info.value.status, info.value.code) == (409, "pin_taken")
    await session.beacon(ev("pincode_updated", {"pinCode": "MYPIN42"}))
    assert (await resolve(nc, "mypin42")).session_id == session.id
    for bad in ("", "x" * 11, "no pin", "ÄÖ", "1234\n"):
        with pytest.raises(RemoteError) as info:
            await new_session(custom_pin=bad)
        assert info.value.code == "validation_failed"


async def test_a_byop_reservation_is_released_when_the_sdk_reports_another_pin(nc, new_session, redis) -> None:
    session = await new_session(custom_pin="abc1")
    await session.beacon(ev("pincode_updated", {"pinCode": "123456"}))
    assert await redis.hget(KEYS.pin("ABC1"), "sid") is None
    assert (await resolve(nc, "123456")).session_id == session.id
    assert await resolve_error(nc, "ABC1") == (404, "pin_not_found")
    assert (await new_session(custom_pin="ABC1")).id != session.id  # free for the next customer


async def test_sessions_racing_for_one_pin_one_owns_it_the_others_record_a_conflict(nc, new_session, redis) -> None:
    for round_ in range(5):
        pin = f"77{round_:04d}"
        sessions = [await new_session() for _ in range(4)]
        answers = await asyncio.gather(*(s.beacon(ev("pincode_updated", {"pinCode": pin})) for s in sessions))
        owners = [s for s, a in zip(sessions, answers, strict=True) if a["ignored"] == 0]
        assert len(owners) == 1  # every other one recorded pin_conflict
        assert await redis.hget(KEYS.pin(pin), "sid") == owners[0].id
        assert [await redis.hget(KEYS.session(s.id), "pin") for s in sessions].count(pin) == 1
        assert (await resolve(nc, pin)).session_id == owners[0].id


async def test_concurrent_pin_changes_of_one_session_leave_it_owning_only_its_last_pin(nc, new_session, redis) -> None:
    session = await new_session()
    pins = [f"78{n:04d}" for n in range(8)]
    # Sent at once, numbered in order: the registry applies them in any order, and the newest (seq) wins.
    await asyncio.gather(
        *(session.beacon(ev("pincode_updated", {"pinCode": pin}, seq=n)) for n, pin in enumerate(pins, 1))
    )
    assert await redis.hget(KEYS.session(session.id), "pin") == pins[-1]
    assert (await resolve(nc, pins[-1])).session_id == session.id
    # Every PIN it gave up (or never adopted) is free again: no reservation is left behind.
    assert [await redis.exists(KEYS.pin(pin)) for pin in pins[:-1]] == [0] * (len(pins) - 1)
    other = await new_session()
    await other.beacon(ev("pincode_updated", {"pinCode": pins[0]}))
    assert (await resolve(nc, pins[0])).session_id == other.id

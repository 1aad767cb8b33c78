"""Staff read API (Bearer API keys, roles) and the beacon script route."""

from __future__ import annotations

import json
import time

import pytest

from shared.accounts import AccountStore, Role
from shared.messaging import SessionState, Source

from .conftest import ev

pytestmark = pytest.mark.cluster


async def keys(redis) -> dict[Role, str]:
    store = AccountStore(redis)
    return {role: (await store.create(f"{role} one", role))[1] for role in Role}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_list_and_get_need_a_staff_key(client, new_session, redis) -> None:
    api = await keys(redis)
    session = await new_session()
    assert (await client.get("/sessions")).status == 401
    assert (await client.get("/sessions", headers=bearer("cbk_wrong"))).status == 401
    for role in Role:
        assert (await client.get(f"/sessions/{session.id}", headers=bearer(api[role]))).status == 200


async def test_list_filters_by_state_queue_and_since(client, new_session, redis) -> None:
    api = await keys(redis)
    billing = await new_session(queue="billing")
    support = await new_session(queue="support")
    await support.beacon(ev("pincode_updated", {"pinCode": "600600"}))

    async def listed(query: str) -> list[str]:
        response = await client.get(f"/sessions?{query}", headers=bearer(api[Role.AGENT]))
        assert response.status == 200
        return [s["session_id"] for s in (await response.json())["sessions"]]

    assert set(await listed("")) == {billing.id, support.id}
    assert await listed("queue=billing") == [billing.id]
    assert await listed("state=waiting") == [support.id]
    assert await listed(f"since={time.time() + 60}") == []
    bad = await client.get("/sessions?state=sleeping&limit=0", headers=bearer(api[Role.AGENT]))
    assert bad.status == 400
    assert {e["property"] for e in (await bad.json())["errors"]} == {"state", "limit"}


async def test_get_returns_the_full_history(client, new_session, redis) -> None:
    api = await keys(redis)
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "600601"}), ev("agent_joined"), ev("heartbeat"))
    await session.beacon(ev("session_ended"))
    await session.beacon(ev("agent_joined"))
    body = await (await client.get(f"/sessions/{session.id}", headers=bearer(api[Role.AGENT]))).json()
    assert body["session"]["state"] == "ended"
    steps = [(h["type"], h["from"], h["to"], h["source"], h.get("ignored")) for h in body["history"]]
    assert steps == [
        ("created", None, "created", "api", None),
        ("pin_assigned", "created", "waiting", "beacon", None),
        ("agent_joined", "waiting", "active", "beacon", None),
        ("ended", "active", "ended", "beacon", None),
        ("agent_joined", "ended", "ended", "beacon", "session_ended"),
    ]
    missing = await client.get("/sessions/nope", headers=bearer(api[Role.AGENT]))
    assert missing.status == 404


async def test_supervisors_end_sessions_agents_cannot(client, new_session, redis, events) -> None:
    api = await keys(redis)
    session = await new_session()
    path = f"/sessions/{session.id}/end"
    assert (await client.post(path, headers=bearer(api[Role.AGENT]))).status == 403
    bad = await client.post(path, json={"reason": "Because!"}, headers=bearer(api[Role.SUPERVISOR]))
    assert bad.status == 400
    response = await client.post(path, json={"reason": "abusive"}, headers=bearer(api[Role.SUPERVISOR]))
    assert response.status == 200
    assert (await response.json())["session"]["state"] == SessionState.ENDED
    (ended,) = await events.wait(session.id, "ended")
    assert ended.source is Source.API and ended.data["reason"] == "abusive"
    assert (await client.post("/sessions/nope/end", headers=bearer(api[Role.ADMIN]))).status == 404


async def test_beacon_script_is_served(client) -> None:
    response = await client.get("/beacon.js")
    assert response.status == 200
    assert response.content_type == "application/javascript"
    assert "CobrowseBeacon" in await response.text()


async def test_metrics_count_events_timers_and_the_outbox(client, new_session, events) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "600602"}))
    await events.wait(session.id, "pin_assigned")
    text = await (await client.get("/metrics")).text()
    for name in (
        'cobrowse_registry_events_total{outcome="applied",source="beacon"}',
        "cobrowse_registry_events_published_total",
        "cobrowse_registry_outbox_pending",
        "cobrowse_registry_timers_fired_total",
    ):
        assert name in text


async def test_agents_read_no_pin_supervisors_and_admins_do(client, new_session, redis) -> None:
    """Contract 8: a PIN opens a customer's screen; agents get one by claiming, never from the read API."""
    api = await keys(redis)
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "600603"}), ev("pincode_updated", {"pinCode": "600604"}))
    rival = await new_session()
    await rival.beacon(ev("pincode_updated", {"pinCode": "600604"}))  # pin_conflict names the PIN in its data

    async def read(role: Role) -> tuple[list[dict], dict]:
        listed = await (await client.get("/sessions", headers=bearer(api[role]))).json()
        one = await (await client.get(f"/sessions/{session.id}", headers=bearer(api[role]))).json()
        other = await (await client.get(f"/sessions/{rival.id}", headers=bearer(api[role]))).json()
        return listed["sessions"], {"one": one, "other": other}

    listed, detail = await read(Role.AGENT)
    assert [s["pin"] for s in listed] == [None, None]
    assert detail["one"]["session"]["pin"] is None
    text = json.dumps([listed, detail])
    assert "600603" not in text and "600604" not in text
    assert [h["type"] for h in detail["one"]["history"]] == ["created", "pin_assigned", "pin_changed"]
    for role in (Role.SUPERVISOR, Role.ADMIN):
        listed, detail = await read(role)
        assert {s["session_id"]: s["pin"] for s in listed} == {session.id: "600604", rival.id: None}
        assert detail["one"]["history"][2]["data"] == {"pin": "600604", "previous": "600603"}
        assert detail["other"]["history"][-1]["data"] == {"pin": "600604"}


async def test_non_finite_since_is_a_400(client, redis) -> None:
    api = await keys(redis)
    for since in ("inf", "-inf", "nan", "NaN", "1e400", "Infinity", "-1"):
        response = await client.get(f"/sessions?since={since}", headers=bearer(api[Role.SUPERVISOR]))
        assert response.status == 400, since
        assert [e["property"] for e in (await response.json())["errors"]] == ["since"]

"""POST /webhooks/zoom: Zoom's URL validation, signatures (good, bad, stale) and events fed into the state machine."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from shared.messaging import SessionState, Source

from .conftest import WEBHOOK_SECRET, ev

pytestmark = pytest.mark.cluster


def signature_headers(
    raw: bytes, *, secret: str = WEBHOOK_SECRET, at: float | None = None, timestamp: str | None = None
) -> dict[str, str]:
    timestamp = timestamp or str(int(at if at is not None else time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return {"x-zm-request-timestamp": timestamp, "x-zm-signature": f"v0={digest}", "Content-Type": "application/json"}


def signed(body: dict[str, Any], **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, signature_headers(raw, **kwargs)


def zoom(event: str, **obj: Any) -> dict[str, Any]:
    return {"event": event, "event_ts": int(time.time() * 1000), "payload": {"account_id": "acc", "object": obj}}


async def post(client, body: dict[str, Any], **kwargs: Any):
    raw, headers = signed(body, **kwargs)
    return await client.post("/webhooks/zoom", data=raw, headers=headers)


async def test_url_validation_challenge(client) -> None:
    response = await post(client, {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}})
    assert response.status == 200
    expected = hmac.new(WEBHOOK_SECRET.encode(), b"abc", hashlib.sha256).hexdigest()
    assert await response.json() == {"plainToken": "abc", "encryptedToken": expected}


async def test_bad_missing_and_stale_signatures_are_rejected(client) -> None:
    body = {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}}
    bad = await post(client, body, secret="not-the-secret")
    assert bad.status == 401 and (await bad.json())["error"]["code"] == "bad_signature"
    stale = await post(client, body, at=time.time() - 3600)
    assert stale.status == 401 and (await stale.json())["error"]["code"] == "stale_timestamp"
    future = await post(client, body, at=time.time() + 3600)
    assert future.status == 401
    raw, headers = signed(body)
    tampered = await client.post("/webhooks/zoom", data=raw + b" ", headers=headers)
    assert tampered.status == 401
    missing = await client.post("/webhooks/zoom", json=body)
    assert missing.status == 401 and (await missing.json())["error"]["code"] == "signature_missing"
    junk = await client.post("/webhooks/zoom", data=b"x", headers={**headers, "x-zm-request-timestamp": "soon"})
    assert junk.status == 401


async def test_webhooks_are_off_without_a_secret(start_registry) -> None:
    registry = await start_registry(ZOOM_WEBHOOK_SECRET_TOKEN="")  # as docker-compose passes an unset one
    response = await post(registry, {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}})
    assert response.status == 404


async def test_cobrowse_events_drive_the_state_machine(client, new_session, events) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "800001"}))
    started = await post(
        client, zoom("cobrowse.session_started", session_id="zs1", session_pin="800001", role_type="customer")
    )
    assert (await started.json())["status"] == "applied"
    # later webhooks correlate through Zoom's session id alone
    joined = zoom("cobrowse.session_user_joined", session_id="zs1", role_type="agent", user_id="u9")
    assert (await (await post(client, joined)).json())["session_id"] == session.id
    (agent,) = await events.wait(session.id, "agent_joined")
    assert agent.source is Source.WEBHOOK and agent.session.state is SessionState.ACTIVE
    # Zoom retries a delivery with the same body: applied once
    raw, headers = signed(joined)
    retry = await client.post("/webhooks/zoom", data=raw, headers=headers)
    assert (await retry.json())["duplicates"] == 1
    await post(client, zoom("cobrowse.session_ended", session_id="zs1"))
    (ended,) = await events.wait(session.id, "ended")
    assert ended.source is Source.WEBHOOK and ended.session.ended_reason == "ended_by_zoom"


async def test_beacons_and_webhooks_do_not_double_count_agents(client, new_session, events) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "800002"}), ev("agent_joined"))
    await post(client, zoom("cobrowse.session_user_joined", session_id="zs2", session_pin="800002", role_type="agent"))
    (_, second) = await events.wait(session.id, "agent_joined", 2)
    assert second.session.agents == 1


async def test_one_customer_per_session(client, new_session, events) -> None:
    session = await new_session()
    await session.beacon(ev("pincode_updated", {"pinCode": "800003"}))
    first = zoom(
        "cobrowse.session_user_joined", session_id="zs3", session_pin="800003", role_type="customer", user_id="c1"
    )
    second = zoom("cobrowse.session_user_joined", session_id="zs3", role_type="customer", user_id="c2")
    assert (await (await post(client, first)).json())["ignored"] == 0
    assert (await (await post(client, second)).json())["ignored"] == 1
    (joined,) = await events.wait(session.id, "customer_joined")
    assert joined.session.customers == 1


async def test_unrelated_and_uncorrelated_webhooks_get_200(client) -> None:
    other = await post(client, {"event": "meeting.started", "payload": {"object": {}}})
    assert other.status == 200 and (await other.json())["status"] == "ignored"
    lost = await post(client, zoom("cobrowse.session_user_joined", session_id="nobody", role_type="agent"))
    assert lost.status == 200 and (await lost.json())["status"] == "uncorrelated"
    garbage = await client.post("/webhooks/zoom", data=b"[1,2", headers=signature_headers(b"[1,2"))
    assert garbage.status == 400


async def test_odd_signed_webhooks_never_cause_a_5xx(client) -> None:
    bodies: list[dict[str, Any]] = [
        {"event": "cobrowse.session_user_joined", "payload": {"object": []}},
        {"event": "cobrowse.session_user_joined", "payload": {"object": {"role_type": 2, "session_id": 5}}},
        {"event": "cobrowse.session_ended", "event_ts": "soon", "payload": {"object": {}}},
        {"event": "cobrowse.session_started", "payload": []},
        {"event": None},
        {"event": "endpoint.url_validation", "payload": {"plainToken": 42}},
        {"payload": {"object": {"session_pin": "../../x"}}},
    ]
    for body in bodies:
        response = await post(client, body)
        assert 200 <= response.status < 500, (body, response.status)


async def test_non_finite_event_timestamps_are_a_400(client) -> None:
    """Issue 8/9: ``1e400`` parses to infinity and NaN compares false with everything; both are refused."""
    template = b'{"event": "cobrowse.session_ended", "event_ts": %s, "payload": {"object": {"session_id": "z"}}}'
    for number in (b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity"):
        raw = template % number
        response = await client.post("/webhooks/zoom", data=raw, headers=signature_headers(raw))
        assert response.status == 400, number
        assert (await response.json())["error"]["code"] == "malformed_json"
    negative = await post(client, zoom("cobrowse.session_ended", session_id="z") | {"event_ts": -1})
    assert negative.status == 400 and (await negative.json())["errors"][0]["property"] == "event_ts"


@pytest.mark.parametrize("timestamp", ["nan", "NaN", "inf", "-inf", "1e3", "-5", "1.5", "١٢٣", "9" * 14])
async def test_a_timestamp_that_is_not_epoch_seconds_never_skips_the_age_check(client, timestamp) -> None:
    """Signed correctly, so only the timestamp check stands between it and a replay."""
    raw, headers = signed({"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}}, timestamp=timestamp)
    response = await client.post("/webhooks/zoom", data=raw, headers=headers)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "bad_timestamp"


async def test_a_non_ascii_signature_is_a_401_not_a_500(client) -> None:
    raw, headers = signed({"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}})
    for signature in ("v0=é" + "0" * 62, "v0=\u2603", "ü"):
        response = await client.post("/webhooks/zoom", data=raw, headers={**headers, "x-zm-signature": signature})
        assert response.status == 401, signature
        assert (await response.json())["error"]["code"] == "bad_signature"

"""The documented flow across the three real service processes: start, PIN, agent connect, join, end."""

from __future__ import annotations

import json
import uuid

import jwt
import nats
import pytest
from aiohttp import ClientSession

from devstack.stack import Stack
from shared.accounts import Role
from shared.messaging import SessionEvent
from tests.conftest import TEST_SDK_KEY, TEST_SDK_SECRET

pytestmark = pytest.mark.cluster


def _event(name: str, seq: int, **payload: object) -> dict[str, object]:
    return {"id": uuid.uuid4().hex, "name": name, "ts": 1_700_000_000_000 + seq, "seq": seq, "payload": payload}


async def test_every_service_reports_health_readiness_and_metrics(stack: Stack) -> None:
    async with ClientSession() as http:
        for url in stack.urls.values():
            for path, status in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200)):
                async with http.get(url + path) as response:
                    assert response.status == status, (url, path)
            async with http.get(url + "/metrics") as response:
                assert "http_requests_total" in await response.text()


async def test_customer_to_agent_flow_across_processes(stack: Stack) -> None:
    token_url, registry_url = stack.urls["token"], stack.urls["registry"]
    api_key = await stack.create_account("Alex", Role.AGENT)
    supervisor_key = await stack.create_account("Kim", Role.SUPERVISOR)
    nc = await nats.connect(stack.nats_url)
    js = nc.jetstream()
    events = await js.subscribe("cobrowse.session.>", ordered_consumer=True)

    async with ClientSession() as http:
        async with http.post(f"{token_url}/api/customer/start", json={"queue": "support"}) as response:
            assert response.status == 200, await response.text()
            started = await response.json()
        session_id, session_token = started["session_id"], started["session_token"]
        claims = jwt.decode(started["sdk_token"], TEST_SDK_SECRET, algorithms=["HS256"])
        assert (claims["app_key"], claims["role_type"]) == (TEST_SDK_KEY, 1)
        assert started["beacon_url"] == f"{registry_url}/beacons"

        # The page's SDK reports the PIN, exactly as navigator.sendBeacon sends it (text/plain body).
        pin_event = _event("pincode_updated", 1, pinCode="ab12cd")
        batch = {"session_id": session_id, "token": session_token, "events": [pin_event]}
        plain = {"Content-Type": "text/plain"}
        async with http.post(started["beacon_url"], data=json.dumps(batch), headers=plain) as response:
            assert response.status == 202, await response.text()

        headers = {"Authorization": f"Bearer {api_key}"}
        async with http.post(f"{token_url}/api/agent/connect", json={"pin": "AB12CD"}, headers=headers) as response:
            assert response.status == 200, await response.text()
            connect = await response.json()
        agent_claims = jwt.decode(connect["token"], TEST_SDK_SECRET, algorithms=["HS256"])
        assert agent_claims["role_type"] == 2 and connect["session_id"] == session_id and connect["pin"] == "AB12CD"

        batch["events"] = [_event("agent_joined", 2), _event("session_ended", 3)]
        async with http.post(started["beacon_url"], json=batch) as response:
            assert response.status == 202

        supervisor = {"Authorization": f"Bearer {supervisor_key}"}
        async with http.get(f"{registry_url}/sessions/{session_id}", headers=supervisor) as response:
            assert response.status == 200
            detail = await response.json()
        assert detail["session"]["state"] == "ended"

    seen: list[str] = []
    while "ended" not in seen:
        msg = await events.next_msg(timeout=5)
        event = SessionEvent.model_validate_json(msg.data)
        assert event.session.session_id == session_id
        seen.append(event.session.state)
    assert seen[0] in ("created", "waiting") and "active" in seen
    await nc.drain()


async def test_agent_connect_needs_an_agent_key_and_a_live_pin(stack: Stack) -> None:
    api_key = await stack.create_account("Alex", Role.AGENT)
    async with ClientSession() as http:
        async with http.post(f"{stack.urls['token']}/api/agent/connect", json={"pin": "123456"}) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"]
        headers = {"Authorization": f"Bearer {api_key}"}
        async with http.post(
            f"{stack.urls['token']}/api/agent/connect", json={"pin": "999999"}, headers=headers
        ) as response:
            assert response.status == 404
        async with http.post(f"{stack.urls['token']}/", json={"role": 2}) as response:
            assert response.status == 401

"""``/api/customer/start`` and ``/api/agent/connect`` against a stand-in registry on the test NATS."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.accounts import AccountStore, Role
from shared.errors import Conflict
from tests.conftest import TEST_SDK_KEY

from .conftest import FakeRegistry, MakeClient, decode

pytestmark = pytest.mark.cluster


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_customer_start_opens_a_session_and_signs_a_customer_token(client: Any, registry: FakeRegistry) -> None:
    response = await client.post("/api/customer/start", json={"queue": "billing", "priority": 2, "userName": "Carol"})
    assert response.status == 200
    body = await response.json()
    assert body["session_id"] == "s-1"
    assert body["session_token"] == "v1.s-1.sig"
    assert (body["queue"], body["state"]) == ("billing", "created")
    assert body["beacon_url"] == "http://127.0.0.1:8081/beacons"
    assert body["zoom"] == {
        "sdk_key": TEST_SDK_KEY,
        "host": "us01-zcb.zoom.us",
        "simulated": False,
        "sdk_version": None,
    }
    claims = decode(body["sdk_token"])
    assert claims["role_type"] == 1 and claims["user_name"] == "Carol" and "enable_byop" not in claims

    [created] = registry.created
    assert (created.queue, created.priority, created.customer_name) == ("billing", 2, "Carol")
    assert created.customer_id == claims["user_id"]
    assert created.client_ip == "127.0.0.1" and created.custom_pin is None


async def test_custom_pin_is_upper_cased_and_enables_byop(client: Any, registry: FakeRegistry) -> None:
    body = await (await client.post("/api/customer/start", json={"customPin": "ab12cd"})).json()
    assert registry.created[0].custom_pin == "AB12CD"
    assert decode(body["sdk_token"])["enable_byop"] == 1


async def test_customer_start_validates_every_field(client: Any, registry: FakeRegistry) -> None:
    body = {"queue": "Bad Queue!", "priority": "1", "userName": "x" * 81, "customPin": "12-34"}
    response = await client.post("/api/customer/start", json=body)
    assert response.status == 400
    assert {e["property"] for e in (await response.json())["errors"]} == {"queue", "priority", "userName", "customPin"}
    assert registry.created == []


async def test_custom_pin_refused_without_byop(make_client: MakeClient, registry: FakeRegistry) -> None:
    client = await make_client(allow_byop=False)
    response = await client.post("/api/customer/start", json={"customPin": "ABC"})
    assert response.status == 400
    assert registry.created == []


async def test_registry_errors_pass_through(client: Any, registry: FakeRegistry) -> None:
    registry.create_error = Conflict("PIN in use", code="pin_taken")
    response = await client.post("/api/customer/start", json={"customPin": "ABC"})
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "pin_taken"


async def test_missing_registry_is_unavailable(client: Any) -> None:
    response = await client.post("/api/customer/start", json={})
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "unavailable"


async def test_customer_start_is_rate_limited_per_ip(make_client: MakeClient, registry: FakeRegistry) -> None:
    client = await make_client(starts_per_window=1)
    assert (await client.post("/api/customer/start", json={})).status == 200
    limited = await client.post("/api/customer/start", json={})
    assert limited.status == 429 and "Retry-After" in limited.headers
    assert len(registry.created) == 1


async def test_agent_connect_trades_a_live_pin_for_a_desk(
    client: Any, registry: FakeRegistry, accounts: AccountStore
) -> None:
    account, key = await accounts.create("Ann Agent", Role.AGENT)
    registry.add_session("AB12", session_id="s-9")
    response = await client.post("/api/agent/connect", json={"pin": "ab12"}, headers=_auth(key))
    assert response.status == 200
    body = await response.json()
    assert (body["pin"], body["session_id"]) == ("AB12", "s-9")
    claims = decode(body["token"])
    assert (claims["role_type"], claims["user_id"], claims["user_name"]) == (2, account.id, "Ann Agent")
    assert body["expires_at"] == claims["exp"]
    desk = urlsplit(body["desk_url"])
    assert (desk.scheme, desk.netloc, desk.path) == ("https", "us01-zcb.zoom.us", "/sdkapi/zcb/frame-templates/desk")
    assert parse_qs(desk.query) == {"access_token": [body["token"]]}
    assert registry.resolved[0].agent_id == account.id


async def test_simulated_desk_is_served_by_us(make_client: MakeClient, registry: FakeRegistry, agent_key: str) -> None:
    client = await make_client(zoom_simulated=True, public_token_url="http://desk.test:8080")
    registry.add_session("123456")
    body = await (await client.post("/api/agent/connect", json={"pin": "123456"}, headers=_auth(agent_key))).json()
    desk = urlsplit(body["desk_url"])
    assert f"{desk.scheme}://{desk.netloc}{desk.path}" == "http://desk.test:8080/demo/desk"
    assert parse_qs(desk.query) == {"pin": ["123456"], "access_token": [body["token"]]}


async def test_agent_connect_requires_an_enabled_account(
    client: Any, registry: FakeRegistry, accounts: AccountStore
) -> None:
    registry.add_session("123456")
    assert (await client.post("/api/agent/connect", json={"pin": "123456"})).status == 401
    account, key = await accounts.create("Off", Role.AGENT)
    await accounts.set_disabled(account.id, True)
    assert (await client.post("/api/agent/connect", json={"pin": "123456"}, headers=_auth(key))).status == 403
    assert registry.resolved == []


async def test_a_rotated_key_is_refused_at_once(client: Any, registry: FakeRegistry, accounts: AccountStore) -> None:
    registry.add_session("123456")
    account, old_key = await accounts.create("Rot", Role.AGENT)
    new_key = await accounts.rotate(account.id)
    for path, body in (("/api/agent/connect", {"pin": "123456"}), ("/", {"role": 2, "pin": "123456"})):
        refused = await client.post(path, json=body, headers=_auth(old_key))
        assert (refused.status, (await refused.json())["error"]["code"]) == (401, "invalid_api_key")
        assert (await client.post(path, json=body, headers=_auth(new_key))).status == 200
    assert len(registry.resolved) == 2


async def test_agent_connect_validates_the_pin(client: Any, registry: FakeRegistry, agent_key: str) -> None:
    response = await client.post("/api/agent/connect", json={"pin": "12 34"}, headers=_auth(agent_key))
    assert response.status == 400
    assert [e["property"] for e in (await response.json())["errors"]] == ["pin"]


async def test_pin_guessing_is_limited_per_agent(
    make_client: MakeClient, registry: FakeRegistry, accounts: AccountStore
) -> None:
    client = await make_client(pin_failures_per_agent=2)
    registry.add_session("999999")
    _, key = await accounts.create("Guesser", Role.AGENT)
    _, other = await accounts.create("Honest", Role.AGENT)
    for pin in ("000001", "000002"):
        response = await client.post("/api/agent/connect", json={"pin": pin}, headers=_auth(key))
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "pin_not_found"
    blocked = await client.post("/api/agent/connect", json={"pin": "999999"}, headers=_auth(key))
    assert blocked.status == 429 and "Retry-After" in blocked.headers
    assert len(registry.resolved) == 2  # reserved before the lookup: the third never reaches the registry
    assert (await client.post("/api/agent/connect", json={"pin": "999999"}, headers=_auth(other))).status == 200


async def test_pin_guessing_is_limited_per_ip(
    make_client: MakeClient, registry: FakeRegistry, accounts: AccountStore
) -> None:
    client = await make_client(pin_failures_per_ip=2)
    registry.add_session("999999")
    keys = [(await accounts.create(f"A{i}", Role.AGENT))[1] for i in range(3)]
    for key in keys[:2]:
        assert (await client.post("/api/agent/connect", json={"pin": "000001"}, headers=_auth(key))).status == 404
    blocked = await client.post("/api/agent/connect", json={"pin": "999999"}, headers=_auth(keys[2]))
    assert blocked.status == 429


async def test_live_pins_do_not_use_up_the_guess_budget(
    make_client: MakeClient, registry: FakeRegistry, agent_key: str
) -> None:
    client = await make_client(pin_failures_per_agent=1)
    registry.add_session("999999")
    registry.not_ready.add("888888")
    registry.full.add("777777")
    for _ in range(3):
        response = await client.post("/api/agent/connect", json={"pin": "999999"}, headers=_auth(agent_key))
        assert response.status == 200
        response = await client.post("/api/agent/connect", json={"pin": "888888"}, headers=_auth(agent_key))
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "pin_not_ready"
        response = await client.post("/api/agent/connect", json={"pin": "777777"}, headers=_auth(agent_key))
        assert (response.status, (await response.json())["error"]["code"]) == (409, "agent_limit")


async def test_idempotency_key_reaches_the_registry_scoped_by_client_ip(
    make_client: MakeClient, registry: FakeRegistry
) -> None:
    client = await make_client(trusted_proxies="127.0.0.1/32")

    async def start(key: str, ip: str) -> dict[str, Any]:
        headers = {"Idempotency-Key": key, "X-Forwarded-For": ip}
        response = await client.post("/api/customer/start", json={}, headers=headers)
        assert response.status == 200
        return dict(await response.json())

    first, retry = await start("click-1", "203.0.113.1"), await start("click-1", "203.0.113.1")
    other_ip, other_key = await start("click-1", "203.0.113.2"), await start("click-2", "203.0.113.1")
    keys = [c.idempotency_key for c in registry.created]
    assert keys[0] == keys[1] and len(set(keys)) == 3
    assert all(k and "click" not in k and "203.0.113" not in k for k in keys)  # derived, never the raw values
    customer_ids = [decode(b["sdk_token"])["user_id"] for b in (first, retry, other_ip, other_key)]
    assert customer_ids[0] == customer_ids[1] == registry.created[0].customer_id == registry.created[1].customer_id
    assert len(set(customer_ids)) == 3


async def test_start_without_idempotency_key_is_a_fresh_session(client: Any, registry: FakeRegistry) -> None:
    for _ in range(2):
        assert (await client.post("/api/customer/start", json={})).status == 200
    assert [c.idempotency_key for c in registry.created] == [None, None]
    assert registry.created[0].customer_id != registry.created[1].customer_id


@pytest.mark.parametrize("key", ["", "a" * 65, "has space", "dot.ted", "ünï", "a/b"])
async def test_invalid_idempotency_key_is_refused_naming_the_header(
    client: Any, registry: FakeRegistry, key: str
) -> None:
    response = await client.post("/api/customer/start", json={}, headers={"Idempotency-Key": key})
    assert response.status == 400
    assert [e["property"] for e in (await response.json())["errors"]] == ["Idempotency-Key"]
    assert registry.created == []

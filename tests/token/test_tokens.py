"""``POST /`` and ``POST /token``: Zoom's auth sample API, strictly typed, with agent tokens for agents only."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from structlog.testing import capture_logs

from shared.accounts import AccountStore, Role
from tests.conftest import TEST_SDK_KEY, TEST_SDK_SECRET
from token_service.signer import RoleType, TokenSigner

from .conftest import FakeRegistry, MakeClient, decode

pytestmark = pytest.mark.cluster

CLAIMS = {"app_key", "role_type", "user_id", "user_name", "iat", "exp"}


async def _errors(response: Any) -> dict[str, str]:
    assert response.status == 400
    body = await response.json()
    assert body["error"]["code"] == "validation_failed"
    return {e["property"]: e["reason"] for e in body["errors"]}


@pytest.mark.parametrize("path", ["/", "/token"])
async def test_customer_token_has_exactly_the_zoom_claims(client: Any, path: str) -> None:
    response = await client.post(path, json={"role": 1, "userId": "u-1", "userName": "Carol"})
    assert response.status == 200
    body = await response.json()
    assert list(body) == ["token"]
    assert jwt.get_unverified_header(body["token"]) == {"alg": "HS256", "typ": "JWT"}
    claims = decode(body["token"])
    assert set(claims) == CLAIMS
    assert claims["app_key"] == TEST_SDK_KEY
    assert claims["role_type"] == 1 and type(claims["role_type"]) is int
    assert (claims["user_id"], claims["user_name"]) == ("u-1", "Carol")
    assert type(claims["iat"]) is int and claims["exp"] - claims["iat"] == 7200


async def test_defaults_follow_the_sample(client: Any) -> None:
    first = decode((await (await client.post("/", json={"role": 1})).json())["token"])
    second = decode((await (await client.post("/", json={"role": 1})).json())["token"])
    assert first["user_id"] and first["user_name"] == first["user_id"]
    assert first["user_id"] != second["user_id"]
    assert first["exp"] - first["iat"] == 7200


@pytest.mark.parametrize("seconds", [1800, 172800])
async def test_expiry_bounds_are_inclusive(client: Any, seconds: int) -> None:
    response = await client.post("/", json={"role": 1, "expirationSeconds": seconds})
    claims = decode((await response.json())["token"])
    assert claims["exp"] - claims["iat"] == seconds


@pytest.mark.parametrize(
    ("body", "bad"),
    [
        ({}, "role"),
        ({"role": 3}, "role"),
        ({"role": 0}, "role"),
        ({"role": "1"}, "role"),
        ({"role": "1abc"}, "role"),
        ({"role": "abc"}, "role"),
        ({"role": 1.5}, "role"),
        ({"role": 1.0}, "role"),
        ({"role": True}, "role"),
        ({"role": None}, "role"),
        ({"role": 1, "expirationSeconds": 1799}, "expirationSeconds"),
        ({"role": 1, "expirationSeconds": 172801}, "expirationSeconds"),
        ({"role": 1, "expirationSeconds": "3600"}, "expirationSeconds"),
        ({"role": 1, "expirationSeconds": 3600.5}, "expirationSeconds"),
        ({"role": 1, "expirationSeconds": None}, "expirationSeconds"),
        ({"role": 1, "userId": 12}, "userId"),
        ({"role": 1, "userId": None}, "userId"),
        ({"role": 1, "userId": "x" * 36}, "userId"),
        ({"role": 1, "userName": ["a"]}, "userName"),
        ({"role": 1, "userName": None}, "userName"),
        ({"role": 1, "userName": "x" * 81}, "userName"),
        ({"role": 1, "enableByop": "yes"}, "enableByop"),
        ({"role": 2, "pin": "12 34"}, "pin"),
        ({"role": 2, "pin": 123456}, "pin"),
    ],
)
async def test_each_invalid_field_is_named(client: Any, body: dict[str, Any], bad: str) -> None:
    errors = await _errors(await client.post("/", json=body))
    assert list(errors) == [bad]


async def test_every_bad_field_is_reported_at_once(client: Any) -> None:
    body = {"role": "2", "expirationSeconds": 10, "userId": "x" * 36, "userName": 5, "other": "ignored"}
    errors = await _errors(await client.post("/", json=body))
    assert set(errors) == {"role", "expirationSeconds", "userId", "userName"}


async def test_longest_accepted_names(client: Any) -> None:
    response = await client.post("/", json={"role": 1, "userId": "i" * 35, "userName": "n" * 80})
    claims = decode((await response.json())["token"])
    assert (len(claims["user_id"]), len(claims["user_name"])) == (35, 80)


async def test_empty_user_id_is_kept_as_in_the_sample(client: Any) -> None:
    claims = decode((await (await client.post("/", json={"role": 1, "userId": ""})).json())["token"])
    assert claims["user_id"] == claims["user_name"] == ""


async def test_byop_claim_only_when_requested(client: Any) -> None:
    plain = decode((await (await client.post("/", json={"role": 1, "enableByop": False})).json())["token"])
    byop = decode((await (await client.post("/", json={"role": 1, "enableByop": True})).json())["token"])
    assert "enable_byop" not in plain
    assert byop["enable_byop"] == 1 and set(byop) == CLAIMS | {"enable_byop"}


async def test_byop_refused_when_disabled(make_client: MakeClient) -> None:
    client = await make_client(allow_byop=False)
    errors = await _errors(await client.post("/", json={"role": 1, "enableByop": True}))
    assert list(errors) == ["enableByop"]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b'{"role": 1, "expirationSeconds": NaN}', "application/json", 400, "malformed_json"),
        (b'{"role": 1, "expirationSeconds": Infinity}', "application/json", 400, "malformed_json"),
        (b'{"role": 1, "expirationSeconds": 1e400}', "application/json", 400, "malformed_json"),
        (b'{"role": 2, "pin": "123456", "expirationSeconds": -Infinity}', "application/json", 400, "malformed_json"),
        (b"\xff\xfe", "application/json", 400, "malformed_json"),
        (b'{"role": 1}', "text/plain", 415, "unsupported_media_type"),
        (b"role=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
async def test_unreadable_bodies_get_json_errors_with_cors(
    client: Any, data: bytes, content_type: str, status: int, code: str
) -> None:
    headers = {"Content-Type": content_type, "Origin": "http://shop.example"}
    response = await client.post("/", data=data, headers=headers)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code
    assert response.headers["Access-Control-Allow-Origin"] == "http://shop.example"


async def test_non_object_body_is_a_validation_error(client: Any) -> None:
    assert list(await _errors(await client.post("/", json=[1]))) == ["body"]


async def test_oversized_body_is_refused(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=1024)
    response = await client.post("/", json={"role": 1, "userName": "x" * 2000})
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"


async def test_cors_allows_only_configured_origins(client: Any) -> None:
    allowed = await client.post("/", json={"role": 1}, headers={"Origin": "http://shop.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://shop.example"
    other = await client.post("/", json={"role": 1}, headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers

    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = await client.options("/", headers={"Origin": "http://shop.example", **preflight})
    assert ok.status == 204 and ok.headers["Access-Control-Allow-Headers"] == "content-type"
    refused = await client.options("/", headers={"Origin": "http://evil.example", **preflight})
    assert refused.status == 403


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("path", ["/", "/token"])
async def test_agent_token_without_a_pin_is_refused(client: Any, agent_key: str, path: str) -> None:
    response = await client.post(path, json={"role": 2}, headers=_auth(agent_key))
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "agent_token_requires_pin"
    assert (await client.post(path, json={"role": 2})).status == 401


async def test_agent_token_requires_an_api_key(client: Any, registry: FakeRegistry) -> None:
    registry.add_session("123456")
    response = await client.post("/", json={"role": 2, "pin": "123456"})
    assert response.status == 401
    bad = await client.post("/", json={"role": 2, "pin": "123456"}, headers=_auth("cbk_not-a-key"))
    assert bad.status == 401
    assert registry.resolved == []


async def test_disabled_account_gets_no_agent_token(
    client: Any, registry: FakeRegistry, accounts: AccountStore
) -> None:
    registry.add_session("123456")
    account, key = await accounts.create("Dan", Role.AGENT)
    await accounts.set_disabled(account.id, True)
    response = await client.post("/", json={"role": 2, "pin": "123456"}, headers=_auth(key))
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "account_disabled"


async def test_agent_token_for_an_unknown_pin_is_a_guess(
    make_client: MakeClient, registry: FakeRegistry, agent_key: str
) -> None:
    client = await make_client(pin_failures_per_agent=1)
    first = await client.post("/token", json={"role": 2, "pin": "000001"}, headers=_auth(agent_key))
    assert (first.status, (await first.json())["error"]["code"]) == (404, "pin_not_found")
    second = await client.post("/token", json={"role": 2, "pin": "000002"}, headers=_auth(agent_key))
    assert second.status == 429
    assert len(registry.resolved) == 1


@pytest.mark.parametrize("role", list(Role))
async def test_staff_get_short_agent_tokens_for_a_live_pin(
    client: Any, registry: FakeRegistry, accounts: AccountStore, role: Role
) -> None:
    registry.add_session("AB12")
    account, key = await accounts.create("Ann Agent", role)
    body = {"role": 2, "pin": "ab12", "userId": "spoofed", "expirationSeconds": 7200}
    response = await client.post("/token", json=body, headers=_auth(key))
    assert response.status == 200
    claims = decode((await response.json())["token"])
    assert claims["role_type"] == 2
    assert (claims["user_id"], claims["user_name"]) == (account.id, "Ann Agent")
    assert claims["exp"] - claims["iat"] == 1800  # TOKEN_AGENT_EXPIRY_S caps what the request asks for
    assert registry.resolved[0].pin == "AB12" and registry.resolved[0].agent_id == account.id


async def test_unbound_agent_tokens_only_in_migration_mode_and_loudly(
    make_client: MakeClient, accounts: AccountStore
) -> None:
    with capture_logs() as logs:
        client = await make_client(allow_unbound_agent_tokens=True)
        account, key = await accounts.create("Legacy", Role.AGENT)
        response = await client.post("/", json={"role": 2, "expirationSeconds": 3600}, headers=_auth(key))
    assert response.status == 200
    claims = decode((await response.json())["token"])
    assert (claims["role_type"], claims["user_id"], claims["exp"] - claims["iat"]) == (2, account.id, 3600)
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert warnings == ["unbound_agent_tokens_allowed", "unbound_agent_token_issued"]


async def test_unbound_agent_tokens_are_rate_limited_per_account(
    make_client: MakeClient, accounts: AccountStore
) -> None:
    client = await make_client(allow_unbound_agent_tokens=True, agent_tokens_per_window=1)
    keys = [(await accounts.create(name, Role.AGENT))[1] for name in ("A", "B")]
    assert (await client.post("/", json={"role": 2}, headers=_auth(keys[0]))).status == 200
    limited = await client.post("/", json={"role": 2}, headers=_auth(keys[0]))
    assert limited.status == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (await client.post("/", json={"role": 2}, headers=_auth(keys[1]))).status == 200


async def test_customer_tokens_are_rate_limited_per_ip(make_client: MakeClient) -> None:
    client = await make_client(customer_tokens_per_window=2, trusted_proxies="127.0.0.1/32")
    for _ in range(2):
        assert (await client.post("/", json={"role": 1})).status == 200
    limited = await client.post("/", json={"role": 1})
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (await limited.json())["error"]["code"] == "rate_limited"
    other_ip = await client.post("/", json={"role": 1}, headers={"X-Forwarded-For": "203.0.113.9"})
    assert other_ip.status == 200


async def test_forwarded_for_is_ignored_unless_trusted(make_client: MakeClient) -> None:
    client = await make_client(customer_tokens_per_window=1)
    assert (await client.post("/", json={"role": 1}, headers={"X-Forwarded-For": "203.0.113.1"})).status == 200
    assert (await client.post("/", json={"role": 1}, headers={"X-Forwarded-For": "203.0.113.2"})).status == 429


async def test_agent_tokens_are_rate_limited_per_account(
    make_client: MakeClient, registry: FakeRegistry, accounts: AccountStore
) -> None:
    client = await make_client(agent_tokens_per_window=1)
    registry.add_session("123456")
    keys = [(await accounts.create(name, Role.AGENT))[1] for name in ("A", "B")]
    body = {"role": 2, "pin": "123456"}
    assert (await client.post("/", json=body, headers=_auth(keys[0]))).status == 200
    assert (await client.post("/", json=body, headers=_auth(keys[0]))).status == 429
    assert (await client.post("/", json=body, headers=_auth(keys[1]))).status == 200


async def test_issued_and_refused_tokens_are_counted(client: Any, agent_key: str) -> None:
    await client.post("/", json={"role": 1})
    await client.post("/", json={"role": 2})
    await client.post("/", json={"role": 2}, headers=_auth(agent_key))
    metrics = await (await client.get("/metrics")).text()
    assert 'cobrowse_tokens_issued_total{role="customer"}' in metrics
    assert 'cobrowse_tokens_refused_total{code="unauthorized"}' in metrics
    assert 'cobrowse_tokens_refused_total{code="agent_token_requires_pin"}' in metrics


async def test_secret_never_in_answers(client: Any) -> None:
    for response in [
        await client.post("/", json={"role": 1}),
        await client.post("/", json={"role": 9}),
        await client.get("/api/config"),
        await client.get("/openapi.json"),
    ]:
        assert TEST_SDK_SECRET not in await response.text()


@pytest.mark.parametrize("byop", [False, True])
def test_signer_output_is_exactly_what_pyjwt_encodes(byop: bool) -> None:
    signer = TokenSigner(TEST_SDK_KEY, TEST_SDK_SECRET, clock=lambda: 1_700_000_000.7)
    token, exp = signer.sign(RoleType.CUSTOMER, "u-1", 'Zoë \u2603 "quoted"', 3600, byop=byop)
    claims: dict[str, Any] = {
        "app_key": TEST_SDK_KEY,
        "role_type": 1,
        "user_id": "u-1",
        "user_name": 'Zoë \u2603 "quoted"',
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
    }
    if byop:
        claims["enable_byop"] = 1
    assert token == jwt.encode(claims, TEST_SDK_SECRET, algorithm="HS256")
    assert exp == 1_700_003_600


def test_pem_shaped_secret_is_refused_at_start() -> None:
    with pytest.raises(jwt.InvalidKeyError):
        TokenSigner(TEST_SDK_KEY, "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----")


async def test_ready_when_every_redis_master_runs_the_probe_script(client: Any) -> None:
    response = await client.get("/readyz")
    assert (response.status, (await response.json())["status"]) == (200, "ready")

"""Client IP behind trusted proxies (``TRUSTED_PROXIES``): the right-most untrusted ``X-Forwarded-For`` hop."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from shared.web import client_ip
from token_service.settings import Settings

from .conftest import FakeRegistry, MakeClient

PROXIES = (ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8"), ip_network("fd00::/8"))


class _Peer:
    """The one transport detail ``request.remote`` reads."""

    def __init__(self, host: str) -> None:
        self._host = host

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self._host, 443) if name == "peername" else default


def _ip(forwarded: list[str], peer: str = "10.1.2.3", proxies: Any = PROXIES) -> str:
    headers = CIMultiDict(("X-Forwarded-For", value) for value in forwarded)
    return client_ip(make_mocked_request("GET", "/", headers=headers, transport=_Peer(peer)), proxies)


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        (["203.0.113.9"], "203.0.113.9"),
        (["6.6.6.6, 203.0.113.9"], "203.0.113.9"),  # the client-chosen first hop is never taken
        (["6.6.6.6, 198.51.100.7, 10.0.0.5"], "198.51.100.7"),  # a chain of trusted proxies is skipped
        (["6.6.6.6", "198.51.100.7, 10.0.0.5"], "198.51.100.7"),  # several header lines are one list
        (["10.0.0.7, 10.0.0.5"], "10.0.0.7"),  # only proxies: the farthest one
        ([], "10.1.2.3"),
        ([""], "10.1.2.3"),
        (["garbage"], "10.1.2.3"),
        (["198.51.100.7, garbage"], "10.1.2.3"),  # the walk stops at garbage, at the last trusted address
        (["garbage, 198.51.100.7"], "198.51.100.7"),
        (["unknown, 10.0.0.5"], "10.0.0.5"),
        (["203.0.113.9:5173"], "203.0.113.9"),
        (["[2001:db8::1]:443"], "2001:db8::1"),
        (["2001:db8::1, fd00::2"], "2001:db8::1"),
    ],
)
def test_right_most_untrusted_hop_is_the_client(forwarded: list[str], expected: str) -> None:
    assert _ip(forwarded) == expected


def test_forwarded_for_is_ignored_from_an_untrusted_peer_or_without_proxies() -> None:
    assert _ip(["203.0.113.9"], peer="192.0.2.1") == "192.0.2.1"
    assert _ip(["203.0.113.9"], proxies=()) == "10.1.2.3"


@given(client_hops=st.lists(st.text(max_size=40), max_size=5), real=st.ip_addresses(v=4))
def test_nothing_the_client_writes_changes_its_ip(client_hops: list[str], real: Any) -> None:
    if any(real in network for network in PROXIES if network.version == 4):
        real = ip_address("198.51.100.1")
    spoofed = ",".join([*client_hops, str(real), "10.0.0.5"])
    assert _ip([spoofed]) == str(real)


@given(st.text(max_size=300))
def test_any_header_gives_the_peer_or_a_real_address(value: str) -> None:
    result = _ip([value.replace("\r", "").replace("\n", "")])
    assert result == "10.1.2.3" or ip_address(result)


@pytest.mark.cluster
async def test_a_spoofed_first_hop_does_not_change_the_ip_the_limits_count(
    make_client: MakeClient, registry: FakeRegistry
) -> None:
    client = await make_client(trusted_proxies="127.0.0.1/32", starts_per_window=1)
    first = await client.post("/api/customer/start", json={}, headers={"X-Forwarded-For": "6.6.6.1, 203.0.113.9"})
    assert first.status == 200
    again = await client.post("/api/customer/start", json={}, headers={"X-Forwarded-For": "6.6.6.2, 203.0.113.9"})
    assert again.status == 429
    other = await client.post("/api/customer/start", json={}, headers={"X-Forwarded-For": "6.6.6.1, 203.0.113.10"})
    assert other.status == 200
    assert [c.client_ip for c in registry.created] == ["203.0.113.9", "203.0.113.10"]


@pytest.mark.cluster
async def test_garbage_forwarded_for_is_answered_and_counted_against_the_proxy(
    make_client: MakeClient, registry: FakeRegistry
) -> None:
    client = await make_client(trusted_proxies="127.0.0.1/32")
    for value in ("", "garbage", "1.2.3.4.5", "[::1", "999.1.1.1, ,", "\u00b2.1.1.1", "x" * 4000):
        response = await client.post("/api/customer/start", json={}, headers={"X-Forwarded-For": value})
        assert response.status == 200
    assert {c.client_ip for c in registry.created} == {"127.0.0.1"}


def test_trusted_proxies_setting_parses_cidrs_and_refuses_the_old_switch(make_settings: Any) -> None:
    settings: Settings = make_settings(trusted_proxies="10.0.0.0/8, 127.0.0.1 ,fd00::/8")
    assert settings.trusted_proxies == (ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32"), ip_network("fd00::/8"))
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        make_settings(trust_forwarded_for=True)
    with pytest.raises(ValueError):
        make_settings(trusted_proxies="10.0.0.1/8")

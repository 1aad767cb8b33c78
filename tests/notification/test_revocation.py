"""Revocation (contract 7): disabling or rotating a key reaches what that key already opened, on every replica.

``AccountStore`` given a NATS client (as ``cobrowse-accounts`` has) publishes ``AccountRevoked`` after disabling or
rotating; without one nothing is published and only the periodic re-check or a claim can notice.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType

from shared.accounts import AccountStore, Role
from shared.messaging import ACCOUNTS_REVOKED, AccountRevoked, RevocationReason

from .conftest import FRAME_TIMEOUT_S
from .test_dashboard import SSE

REVOKED_WITHIN_S = 1.0  # the contract's deadline


async def _revoke(nc, account_id: str, reason: RevocationReason) -> None:
    await nc.publish(ACCOUNTS_REVOKED, AccountRevoked(account_id=account_id, reason=reason).encode())
    await nc.flush()


async def _closed_with_revoked(ws, within: float = REVOKED_WITHIN_S) -> None:
    """The socket's next frames are ``error/revoked`` and a 4401 close, within ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            msg = await ws.receive()
            assert msg.type == WSMsgType.TEXT, msg
            frame = msg.json()
            if frame["type"] == "error":
                assert frame["code"] == "revoked"
                break
        msg = await ws.receive()
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
    assert ws.close_code == 4401


async def _offered_to_alice_then_bob(replica, available, waiting):
    """Alice (replica one) holds the offer of a waiting request; Bob (replica two) is available too."""
    one = await replica(offer_timeout_s=30.0)
    two = await replica(offer_timeout_s=30.0)
    alice = await available(one, "alice")
    sid = await waiting()
    await alice.expect("offer", session_id=sid)
    bob = await available(two, "bob")
    return alice, bob, sid


async def test_disabled_agents_socket_closes_within_1s_and_its_offer_goes_to_another(
    replica, available, waiting, redis, nc, events
):
    alice, bob, sid = await _offered_to_alice_then_bob(replica, available, waiting)
    await AccountStore(redis, nc=nc).set_disabled(alice.agent_id, True)
    await _closed_with_revoked(alice.ws)
    await bob.expect("offer", session_id=sid)
    await events.expect("disconnected", agent_id=alice.agent_id)


async def test_claim_by_disabled_key_fails_and_closes_the_socket(replica, available, waiting, redis, token_service):
    alice, bob, sid = await _offered_to_alice_then_bob(replica, available, waiting)
    await AccountStore(redis).set_disabled(alice.agent_id, True)  # no revocation message: the claim itself checks
    await alice.send({"type": "claim", "session_id": sid})
    await _closed_with_revoked(alice.ws, FRAME_TIMEOUT_S)
    await bob.expect("offer", session_id=sid)
    await bob.send({"type": "claim", "session_id": sid})
    assert (await bob.expect("claimed", session_id=sid))["pin"]
    assert [t.account_id for t in token_service] == [bob.agent_id]


async def test_claim_by_rotated_key_fails(replica, available, waiting, redis, token_service):
    alice, _bob, sid = await _offered_to_alice_then_bob(replica, available, waiting)
    await AccountStore(redis).rotate(alice.agent_id)
    await alice.send({"type": "claim", "session_id": sid})
    await _closed_with_revoked(alice.ws, FRAME_TIMEOUT_S)
    assert token_service == []


async def test_socket_opened_with_the_new_key_survives_the_rotation_message(replica, agent, account, redis, nc):
    client = await replica()
    agent_id, old_key = await account("alice")
    old = await agent(client, api_key=old_key)
    new_key = await AccountStore(redis, nc=nc).rotate(agent_id)
    await _closed_with_revoked(old.ws)
    fresh = await agent(client, api_key=new_key)
    await _revoke(nc, agent_id, RevocationReason.ROTATED)  # a repeat names the account, not the new key
    await fresh.sync()


async def test_rotated_supervisor_streams_end_within_1s_on_every_replica(replica, account, redis, nc):
    one, two = await replica(), await replica()
    supervisor_id, key = await account("sup", role=Role.SUPERVISOR)
    headers = {"Authorization": f"Bearer {key}"}
    sse = SSE(await one.get("/events", headers=headers))
    assert (await sse.next())[1]["type"] == "snapshot"
    ws = await two.ws_connect("/ws/dashboard")
    await ws.send_json({"type": "auth", "api_key": key})
    assert (await ws.receive_json())["type"] == "snapshot"
    ticket = (await (await two.post("/api/tickets", headers=headers)).json())["ticket"]
    by_ticket = SSE(await two.get("/events", params={"ticket": ticket}))
    assert (await by_ticket.next())[1]["type"] == "snapshot"

    await AccountStore(redis, nc=nc).rotate(supervisor_id)
    async with asyncio.timeout(REVOKED_WITHIN_S):
        for stream in (sse, by_ticket):
            _, frame = await stream.next()
            assert frame["type"] == "error" and frame["code"] == "revoked"
            assert await stream.response.content.read() == b""  # the response ends
        await _closed_with_revoked(ws)


async def test_disabled_supervisor_header_socket_ends_within_1s(replica, account, redis, nc):
    client = await replica()
    supervisor_id, key = await account("sup", role=Role.SUPERVISOR)
    ws = await client.ws_connect("/ws/dashboard", headers={"Authorization": f"Bearer {key}"})
    assert (await ws.receive_json())["type"] == "snapshot"
    await AccountStore(redis, nc=nc).set_disabled(supervisor_id, True)
    await _closed_with_revoked(ws)


async def test_missed_revocation_is_caught_by_the_periodic_recheck(replica, agent, account, redis):
    client = await replica(account_recheck_s=0.2)
    agent_id, key = await account("alice")
    alice = await agent(client, api_key=key)
    supervisor_id, sup_key = await account("sup", role=Role.SUPERVISOR)
    ws = await client.ws_connect("/ws/dashboard", headers={"Authorization": f"Bearer {sup_key}"})
    assert (await ws.receive_json())["type"] == "snapshot"
    other_id, other_key = await account("sup2", role=Role.SUPERVISOR)
    ticket = await client.post("/api/tickets", headers={"Authorization": f"Bearer {other_key}"})
    by_ticket = SSE(await client.get("/events", params={"ticket": (await ticket.json())["ticket"]}))
    assert (await by_ticket.next())[1]["type"] == "snapshot"
    accounts = AccountStore(redis)
    await accounts.set_disabled(agent_id, True)  # nobody publishes: only the re-check can notice
    await accounts.rotate(supervisor_id)
    await accounts.set_disabled(other_id, True)
    await _closed_with_revoked(alice.ws, FRAME_TIMEOUT_S)
    await _closed_with_revoked(ws, FRAME_TIMEOUT_S)
    async with asyncio.timeout(FRAME_TIMEOUT_S):
        while "code" not in (data := (await by_ticket.next())[1]):
            pass  # events of the others' revocations (alice's disconnect) may come first
        assert data["code"] == "revoked"


async def test_unreadable_revocation_message_changes_nothing(replica, agent, nc):
    client = await replica()
    alice = await agent(client, "alice")
    for junk in (b"", b"[" * 5000, b'{"account_id": 1}', b"\xff"):
        await nc.publish(ACCOUNTS_REVOKED, junk)
    await _revoke(nc, "someone-else", RevocationReason.DISABLED)
    await alice.sync()

from __future__ import annotations

import asyncio

import nats
import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from structlog.testing import capture_logs

from shared.accounts import AccountStore, Role
from shared.errors import Forbidden, Unauthorized
from shared.messaging import ACCOUNTS_REVOKED, AccountRevoked, RevocationReason

pytestmark = pytest.mark.cluster


async def test_api_key_is_stored_only_as_digest(redis: Redis) -> None:
    store = AccountStore(redis)
    account, api_key = await store.create("Ann", Role.AGENT)
    readers = {"hash": redis.hgetall, "string": redis.get, "set": redis.smembers}
    keys = await redis.keys()
    stored = [await readers[await redis.type(key)](key) for key in keys]
    assert len(stored) == 3
    assert len({key_slot(key.encode()) for key in keys}) == 1  # one slot: every change is one script
    assert api_key not in repr(stored)
    assert (await store.authenticate(api_key)).id == account.id


async def test_disabled_account_is_forbidden_and_unknown_key_unauthorized(redis: Redis) -> None:
    store = AccountStore(redis)
    account, api_key = await store.create("Bob", Role.SUPERVISOR)
    await store.set_disabled(account.id, True)
    with pytest.raises(Forbidden):
        await store.authenticate(api_key)
    with pytest.raises(Unauthorized):
        await store.authenticate("cbk_unknown")
    with pytest.raises(Unauthorized):
        await store.authenticate(None)


async def test_rotation_retires_the_old_key(redis: Redis) -> None:
    store = AccountStore(redis)
    account, old_key = await store.create("Cid", Role.ADMIN)
    new_key = await store.rotate(account.id)
    with pytest.raises(Unauthorized):
        await store.authenticate(old_key)
    assert (await store.authenticate(new_key)).role is Role.ADMIN
    assert [a.id for a in await store.list()] == [account.id]


def test_role_requirement_admin_passes_everything() -> None:
    from shared.accounts import Account

    agent = Account(id="a", name="A", role=Role.AGENT)
    with pytest.raises(Forbidden):
        agent.require(Role.SUPERVISOR)
    assert Account(id="b", name="B", role=Role.ADMIN).require(Role.SUPERVISOR)


@pytest.mark.parametrize("key", ["cbk_\udcff\udcfe", "cbk_é", "cbk_a b", "cbk_" + "a" * 200, "Bearer", "cbk_"])
async def test_malformed_keys_are_unauthorized_before_any_lookup(redis: Redis, key: str) -> None:
    with pytest.raises(Unauthorized) as exc_info:
        await AccountStore(redis).authenticate(key)
    assert exc_info.value.code == "invalid_api_key"


async def test_disable_and_rotate_publish_a_revocation(redis: Redis, nc: nats.aio.client.Client, nats_url: str) -> None:
    received: asyncio.Queue[AccountRevoked] = asyncio.Queue()

    async def on_revoked(msg: nats.aio.msg.Msg) -> None:
        await received.put(AccountRevoked.model_validate_json(msg.data))

    await nc.subscribe(ACCOUNTS_REVOKED, cb=on_revoked)
    await nc.flush()
    publisher = await nats.connect(nats_url)  # another client, as another process would be
    store = AccountStore(redis, nc=publisher)
    account, old_key = await store.create("Fay", Role.SUPERVISOR)
    new_key = await store.rotate(account.id)
    assert await asyncio.wait_for(received.get(), 2) == AccountRevoked(account_id=account.id, reason="rotated")
    with pytest.raises(Unauthorized):
        await store.authenticate(old_key)  # refused at once, before any notice arrives anywhere
    await store.set_disabled(account.id, True)
    assert await asyncio.wait_for(received.get(), 2) == AccountRevoked(account_id=account.id, reason="disabled")
    with pytest.raises(Forbidden):
        await store.authenticate(new_key)
    await store.set_disabled(account.id, False)  # enabling revokes nothing
    await publisher.drain()
    assert received.empty()


async def test_revocation_that_cannot_be_published_keeps_the_change(redis: Redis, nats_url: str) -> None:
    closed = await nats.connect(nats_url)
    await closed.close()
    store = AccountStore(redis, nc=closed)
    account, key = await store.create("Gil", Role.AGENT)
    with capture_logs() as logs:
        assert (await store.set_disabled(account.id, True)).disabled
    assert [e["event"] for e in logs] == ["account_revocation_unpublished"]
    assert logs[0]["reason"] == RevocationReason.DISABLED.value
    with pytest.raises(Forbidden):
        await store.authenticate(key)


async def test_accounts_of_the_old_key_layout_are_migrated_with_their_keys(redis: Redis) -> None:
    """Before the hash tag an account was ``acct:<id>``, its key ``acct:key:<digest>``, the index ``acct:ids``."""
    store = AccountStore(redis)
    account, api_key = await store.create("Old", Role.SUPERVISOR)
    new_fields = await redis.hgetall(f"acct:{{all}}:{account.id}")
    for key in await redis.keys():
        await redis.delete(key)  # as if it had been written by the old version
    await redis.hset(f"acct:{account.id}", mapping={**new_fields, "disabled": "1"})
    await redis.set(f"acct:key:{new_fields['key_digest']}", account.id)
    await redis.sadd("acct:ids", account.id)
    with pytest.raises(Unauthorized):
        await store.authenticate(api_key)
    assert await store.migrate_legacy() == 1
    with pytest.raises(Forbidden):  # the same key finds the same (disabled) account
        await store.authenticate(api_key)
    assert [(a.id, a.name, a.role, a.disabled) for a in await store.list()] == [
        (account.id, "Old", Role.SUPERVISOR, True)
    ]
    await store.set_disabled(account.id, False)
    new_key = await store.rotate(account.id)
    assert await store.migrate_legacy() == 0  # once there, an account is never copied over again
    with pytest.raises(Unauthorized):
        await store.authenticate(api_key)
    assert (await store.authenticate(new_key)).id == account.id

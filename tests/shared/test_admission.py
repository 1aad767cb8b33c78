"""Admission (``AccountStore.admit``): an account's key authenticated and its budgets taken in one script, all or none.

On a single Redis and, with ``--topology=cluster``, a Redis Cluster: every key of an admission is in the accounts'
one slot, so it is one script there too.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from shared.accounts import AccountStore, Role
from shared.errors import Forbidden, NotFound, RateLimited, Unauthorized
from shared.ratelimit import Budget
from shared.scripts import ScriptRunner

pytestmark = pytest.mark.cluster

TOKENS = Budget("agent", limit=5, window_s=60)
GUESSES = Budget("pin:agent", limit=2, window_s=30)
PER_IP = Budget("pin:ip", limit=3, window_s=30, per_ip=True)


async def test_admission_takes_every_budget_of_the_account_and_its_ip_in_one_slot(redis: Redis) -> None:
    store = AccountStore(redis)
    account, key = await store.create("Ann", Role.AGENT)
    admission = await store.admit(key, TOKENS, GUESSES, PER_IP, ip="10.0.0.1")
    assert admission.account == account and admission.counts == (1, 1, 1)
    assert [await store.budget_used(b, s) for b, s in ((TOKENS, account.id), (PER_IP, "10.0.0.1"))] == [1, 1]
    assert len({key_slot(k.encode()) for k in await redis.keys()}) == 1  # accounts and budgets: one slot


async def test_a_full_budget_refuses_and_takes_nothing_of_the_others(redis: Redis) -> None:
    store = AccountStore(redis)
    ann, ann_key = await store.create("Ann", Role.AGENT)
    bob, bob_key = await store.create("Bob", Role.AGENT)
    for _ in range(3):
        await store.admit(ann_key, TOKENS, PER_IP, ip="10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        await store.admit(bob_key, TOKENS, PER_IP, ip="10.0.0.1")  # the IP is full, Bob's own budget is not
    assert 1 <= refused.value.retry_after <= 30
    assert await store.budget_used(TOKENS, bob.id) == 0
    assert (await store.admit(bob_key, TOKENS, PER_IP, ip="10.0.0.2")).counts == (1, 1)
    assert await store.budget_used(TOKENS, ann.id) == 3


async def test_concurrent_admissions_never_pass_a_budget(redis: Redis) -> None:
    """10 agents behind one IP, 20 lookups each: the IP's 30 bound what gets through, each agent's 10 its share."""
    store = AccountStore(redis, runner=ScriptRunner(redis))
    keys = [(await store.create(f"agent {i}", Role.AGENT))[1] for i in range(10)]
    per_agent, per_ip = Budget("a", limit=10, window_s=60), Budget("i", limit=30, window_s=60, per_ip=True)
    results = await asyncio.gather(
        *(store.admit(keys[i % 10], per_agent, per_ip, ip="ip") for i in range(200)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 170 and all(isinstance(r, RateLimited) for r in refused)
    assert await store.budget_used(per_ip, "ip") == 30
    accounts = {a.account.id for a in results if not isinstance(a, BaseException)}
    assert sum([await store.budget_used(per_agent, account_id) for account_id in accounts]) == 30


async def test_unknown_disabled_and_missing_accounts_take_nothing(redis: Redis) -> None:
    store = AccountStore(redis)
    account, key = await store.create("Ann", Role.AGENT)
    with pytest.raises(Unauthorized):
        await store.admit("cbk_unknown", TOKENS, PER_IP, ip="10.0.0.1")
    with pytest.raises(Unauthorized):
        await store.admit(None, TOKENS, ip="10.0.0.1")
    with pytest.raises(NotFound):
        await store.admit_id("0000000000000000", TOKENS, PER_IP, ip="10.0.0.1")
    await store.set_disabled(account.id, True)
    with pytest.raises(Forbidden):
        await store.admit(key, TOKENS, PER_IP, ip="10.0.0.1")
    with pytest.raises(Forbidden):
        await store.admit_id(account.id, TOKENS, ip="10.0.0.1")
    assert (await store.budget_used(TOKENS, account.id), await store.budget_used(PER_IP, "10.0.0.1")) == (0, 0)


async def test_without_an_ip_the_per_ip_budgets_are_skipped(redis: Redis) -> None:
    store = AccountStore(redis)
    account, key = await store.create("Ann", Role.AGENT)
    admission = await store.admit_id(account.id, TOKENS, PER_IP, ip="")
    assert admission.budgets == (TOKENS,) and admission.counts == (1,)
    assert (await store.admit(key, ip="")).account == account  # no budgets: a plain authentication


async def test_give_back_returns_the_named_slots_never_below_zero_nor_after_the_window(redis: Redis) -> None:
    store = AccountStore(redis)
    account, key = await store.create("Ann", Role.AGENT)
    admission = await store.admit(key, TOKENS, GUESSES, PER_IP, ip="10.0.0.1")
    await store.give_back(admission, GUESSES, PER_IP)  # a live PIN: the guesses come back, the attempt stays
    assert [await store.budget_used(b, admission.subject(b)) for b in (TOKENS, GUESSES, PER_IP)] == [1, 0, 0]
    await store.give_back(admission, GUESSES, PER_IP)
    assert await store.budget_used(GUESSES, account.id) == 0
    for _ in range(2):
        await store.admit(key, GUESSES, ip="")
    with pytest.raises(RateLimited):  # given back twice, still only its limit of two
        await store.admit(key, GUESSES, ip="")
    gone = Budget("gone", limit=1, window_s=60)
    late = await store.admit(key, gone, ip="")
    await redis.delete(*[k for k in await redis.keys("*:rl:*") if k.endswith(":gone")])  # its window ended
    await store.give_back(late, gone)
    assert await redis.keys("*:rl:*:gone") == []  # nothing given back, nothing created


async def test_an_admission_is_one_script_call(redis: Redis) -> None:
    runner = ScriptRunner(redis)
    store = AccountStore(redis, runner=runner)
    _, key = await store.create("Ann", Role.AGENT)
    calls = 0
    execute = runner._execute

    async def counted(batch: list) -> list:  # type: ignore[type-arg]
        nonlocal calls
        calls += len(batch)
        return await execute(batch)

    runner._batcher._send = counted  # type: ignore[assignment]
    await store.admit(key, TOKENS, GUESSES, PER_IP, ip="10.0.0.1")
    assert calls == 1

"""The token service's limits: a PIN lookup's budgets, taken with the agent's authentication, and the odds."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.accounts import AccountStore, Role
from shared.errors import RateLimited
from shared.redis_conn import RedisClient
from shared.scripts import ScriptRunner
from token_service.limits import Limits, guess_probability
from token_service.settings import Settings

pytestmark = pytest.mark.cluster


async def test_a_guess_refused_for_its_ip_keeps_nothing_of_the_account(
    redis: RedisClient, make_settings: Callable[..., Settings]
) -> None:
    limits = Limits.create(ScriptRunner(redis), make_settings(pin_failures_per_ip=1, pin_failures_per_agent=5))
    accounts = AccountStore(redis)
    (ann, ann_key), (bob, bob_key) = [await accounts.create(name, Role.AGENT) for name in ("Ann", "Bob")]
    first = await accounts.admit(ann_key, *limits.pin_lookup, ip="1.2.3.4")
    assert first.counts == (1, 1, 1)
    with pytest.raises(RateLimited):
        await accounts.admit(bob_key, *limits.pin_lookup, ip="1.2.3.4")
    assert [await accounts.budget_used(b, bob.id) for b in (limits.agent_tokens, limits.pin_guesses_agent)] == [0, 0]
    await accounts.give_back(first, *limits.guesses)  # a live PIN: the guesses come back, the attempt stays
    assert await accounts.budget_used(limits.pin_guesses_ip, "1.2.3.4") == 0
    assert [await accounts.budget_used(b, ann.id) for b in (limits.agent_tokens, limits.pin_guesses_agent)] == [1, 0]


async def test_customer_tokens_share_the_runner_and_stop_at_the_limit(
    redis: RedisClient, make_settings: Callable[..., Settings]
) -> None:
    limits = Limits.create(ScriptRunner(redis), make_settings(customer_tokens_per_window=2))
    assert [await limits.customer_tokens.hit("ip"), await limits.customer_tokens.hit("ip")] == [1, 2]
    with pytest.raises(RateLimited):
        await limits.customer_tokens.hit("ip")


def test_documented_caps_give_about_one_percent_an_hour() -> None:
    """10 keys behind one IP, 10 per key and 30 per IP per 15 minutes: 120 guesses an hour, 100 live PINs."""
    chance = guess_probability(per_key=10, per_ip=30, window_s=900)
    assert 0.0118 < chance < 0.0121


def test_guess_probability_grows_with_the_budget_and_saturates() -> None:
    low = guess_probability(per_key=1, per_ip=30, window_s=900)
    assert guess_probability(per_key=59, per_ip=60, window_s=900) > low > 0
    assert guess_probability(per_key=10**6, per_ip=10**6, window_s=60) == 1.0
    assert guess_probability(per_key=0, per_ip=30, window_s=900) == 0.0

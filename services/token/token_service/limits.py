"""The token service's rate limits, all kept in Redis so they hold across replicas (``shared.ratelimit``).

Every limit is a reservation taken before the work it guards: N concurrent requests cost N slots and at most
``limit`` get through. A PIN lookup's agent-token slot, per-account guess slot and per-IP guess slot are budgets
(``shared.ratelimit.Budget``) taken in the very script that authenticates the agent's key
(``AccountStore.admit``), all or none; the guess slots are given back (one more script) when the PIN was live, so
agents typing live PINs are never slowed while a burst of wrong guesses reaches the registry at most ``limit`` times
per account and per IP.

Customer tokens and starts (``RateLimit``, per client IP) are the hot path (thousands per second): their hits go
through the service's one ``ScriptRunner``, so the hits that arrive while a Redis round trip is in flight share the
next one.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.ratelimit import Budget, RateLimit
from shared.scripts import ScriptRunner

from .settings import Settings

__all__ = ["Limits", "guess_probability"]


@dataclass(frozen=True)
class Limits:
    customer_tokens: RateLimit
    """Per client IP."""
    starts: RateLimit
    """``/api/customer/start`` per client IP."""
    agent_tokens: Budget
    """Agent-token requests per account (every attempt, live PIN or not)."""
    pin_guesses_agent: Budget
    """PIN lookups per account that missed (or are in flight); a lookup that finds a live PIN gives its slot back."""
    pin_guesses_ip: Budget
    """The same per client IP, across every account behind it."""

    @classmethod
    def create(cls, runner: ScriptRunner, settings: Settings) -> Limits:
        """Every limit runs its scripts through ``runner``, so concurrent calls share round trips."""
        s = settings

        def limit(name: str, count: int, window_s: int) -> RateLimit:
            return RateLimit(runner, f"token:{name}", limit=count, window_s=window_s)

        return cls(
            customer_tokens=limit("customer", s.customer_tokens_per_window, s.rate_window_s),
            starts=limit("start", s.starts_per_window, s.rate_window_s),
            agent_tokens=Budget("token:agent", s.agent_tokens_per_window, s.rate_window_s),
            pin_guesses_agent=Budget("token:pin:agent", s.pin_failures_per_agent, s.pin_window_s),
            pin_guesses_ip=Budget("token:pin:ip", s.pin_failures_per_ip, s.pin_window_s, per_ip=True),
        )

    @property
    def pin_lookup(self) -> tuple[Budget, ...]:
        """What a PIN lookup takes when its agent is admitted: an agent-token attempt and a guess, per account and
        per IP."""
        return (self.agent_tokens, self.pin_guesses_agent, self.pin_guesses_ip)

    @property
    def guesses(self) -> tuple[Budget, ...]:
        """What a lookup that found a live PIN gives back (the agent-token attempt stays taken)."""
        return (self.pin_guesses_agent, self.pin_guesses_ip)


def guess_probability(
    *,
    per_key: int,
    per_ip: int,
    window_s: int,
    keys: int = 10,
    live_pins: int = 100,
    pin_space: int = 10**6,
    period_s: int = 3600,
) -> float:
    """The chance that one client IP hits at least one live PIN within ``period_s``.

    Args:
        per_key: lookups one account got through to the registry in one window (measured in a burst test).
        per_ip: lookups one IP got through in one window, across all its accounts (measured likewise).
        window_s: the guessing window (``TOKEN_PIN_WINDOW_S``).
        keys: agent keys the attacker holds behind the one IP.
        live_pins: live sessions, each with a distinct PIN, at any moment.
        pin_space: possible PINs (Zoom's PINs are 6 digits).
        period_s: how long the attacker keeps going.

    The attacker gets ``min(keys * per_key, per_ip)`` lookups per window, ``period_s / window_s`` windows (the
    long-run rate; a fixed window lets up to one more window's worth through at the edges of the period), and
    never guesses the same PIN twice, each guess hitting with chance ``live_pins / remaining PINs``.
    """
    guesses = min(keys * per_key, per_ip) * period_s // window_s
    if guesses > pin_space - live_pins:
        return 1.0
    miss = 1.0
    for tried in range(guesses):
        miss *= 1 - live_pins / (pin_space - tried)
    return 1.0 - miss

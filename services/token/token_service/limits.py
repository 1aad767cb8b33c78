"""The token service's rate limits, all kept in Redis so they hold across replicas (``shared.ratelimit``)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from shared.ratelimit import RateLimit

from .settings import Settings

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    customer_tokens: RateLimit
    """Per client IP."""
    agent_tokens: RateLimit
    """Per account."""
    starts: RateLimit
    """``/api/customer/start`` per client IP."""
    pin_failures_agent: RateLimit
    """Failed PIN lookups per account; checked before a lookup, counted after a failed one."""
    pin_failures_ip: RateLimit
    """Failed PIN lookups per client IP."""

    @classmethod
    def create(cls, redis: Redis, settings: Settings) -> Limits:
        s = settings

        def limit(name: str, count: int, window_s: int) -> RateLimit:
            return RateLimit(redis, f"token:{name}", limit=count, window_s=window_s)

        return cls(
            customer_tokens=limit("customer", s.customer_tokens_per_window, s.rate_window_s),
            agent_tokens=limit("agent", s.agent_tokens_per_window, s.rate_window_s),
            starts=limit("start", s.starts_per_window, s.rate_window_s),
            pin_failures_agent=limit("pin:agent", s.pin_failures_per_agent, s.pin_window_s),
            pin_failures_ip=limit("pin:ip", s.pin_failures_per_ip, s.pin_window_s),
        )

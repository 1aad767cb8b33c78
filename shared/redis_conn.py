"""Redis connection as an aiohttp ``cleanup_ctx``: one client per process, checked at start, closed at exit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .keys import REDIS
from .settings import redact_url

__all__ = ["connect_redis", "redis_context"]

log = structlog.get_logger()


async def connect_redis(url: str, *, retries: int = 5, delay_s: float = 0.5) -> Redis:
    """Connect and ping, retrying ``retries`` times; every service decodes responses to ``str``."""
    client: Redis = Redis.from_url(url, decode_responses=True, health_check_interval=30)
    for remaining in range(retries, -1, -1):
        try:
            await client.ping()
            break
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if remaining == 0:
                await client.aclose()
                raise
            log.warning("redis_connect_retry", url=redact_url(url), error=str(exc), retries_remaining=remaining)
            await asyncio.sleep(delay_s)
    log.info("redis_connected", url=redact_url(url))
    return client


def redis_context(url: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        client = await connect_redis(url)
        app[REDIS] = client
        yield
        await client.aclose()

    return ctx

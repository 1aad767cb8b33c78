"""Redis connection as an aiohttp ``cleanup_ctx``: one bounded client per process, checked at start, closed at exit.

Failure model: the client's pool holds at most ``REDIS_POOL_SIZE`` connections. A caller past that *waits* for a
free one (``BlockingConnectionPool``), up to ``REDIS_POOL_TIMEOUT_S``, then gets a ``redis.ConnectionError``
("No connection available"); a connect or a reply slower than ``REDIS_SOCKET_TIMEOUT_S`` is a
``redis.TimeoutError``. Both reach the HTTP edge, which answers 503 ``unavailable`` with ``Retry-After``; background
loops see the same errors and retry. A broken connection is retried once at once, so a Redis restart costs the
callers of that moment one error at most, and nothing needs restarting afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .keys import REDIS
from .settings import ServiceSettings, redact_url

__all__ = ["connect_redis", "redis_client", "redis_context"]

log = structlog.get_logger()


def redis_client(url: str, *, pool_size: int = 64, pool_timeout_s: float = 2.0, socket_timeout_s: float = 2.0) -> Redis:
    """A client on a bounded, blocking pool; every service decodes responses to ``str``."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=30,
        decode_responses=True,
        # One immediate retry on a broken connection (a restarted Redis); more would hold requests past their 503.
        retry=Retry(NoBackoff(), 1),
    )
    return Redis.from_pool(pool)


async def connect_redis(settings: ServiceSettings, *, retries: int = 5, delay_s: float = 0.5) -> Redis:
    """Connect with ``settings``' pool bounds and ping, retrying ``retries`` times."""
    url = settings.redis_url
    client = redis_client(
        url,
        pool_size=settings.redis_pool_size,
        pool_timeout_s=settings.redis_pool_timeout_s,
        socket_timeout_s=settings.redis_socket_timeout_s,
    )
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
    log.info("redis_connected", url=redact_url(url), pool_size=settings.redis_pool_size)
    return client


def redis_context(settings: ServiceSettings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        client = await connect_redis(settings)
        app[REDIS] = client
        yield
        await client.aclose()

    return ctx

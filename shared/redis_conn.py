"""Redis connection as an aiohttp ``cleanup_ctx``: one bounded client per process, checked at start, closed at exit.

Three topologies (``REDIS_MODE``), one client type for the code above (``RedisClient``):

- ``standalone``: one Redis at ``REDIS_URL``, on a blocking pool.
- ``cluster``: a Redis Cluster found from the seed URLs in ``REDIS_URL`` (comma separated). redis-py's cluster
  client routes each command, and each script by its ``KEYS[1]``, to the master of its slot and follows
  ``MOVED``/``ASK`` and failovers (``shared.scripts`` keeps every script's keys in one slot).
- ``sentinel``: the master that the sentinels at ``REDIS_URL`` name ``REDIS_SENTINEL_MASTER``; after a failover
  the next connection goes to the new master.

Failure model: a standalone pool holds at most ``REDIS_POOL_SIZE`` connections (a cluster client as many per
node). A caller past that *waits* for a free one, up to ``REDIS_POOL_TIMEOUT_S``, then gets a
``redis.ConnectionError``; a connect or a reply slower than ``REDIS_SOCKET_TIMEOUT_S`` is a ``redis.TimeoutError``.
Both reach the HTTP edge, which answers 503 ``unavailable`` with ``Retry-After``; background loops see the same
errors and retry. A broken connection is retried once at once, so a Redis restart (or a failover) costs the
callers of that moment one error at most, and nothing needs restarting afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeAlias, cast
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from .keys import REDIS
from .settings import ServiceSettings, redact_url

__all__ = ["RedisClient", "close_redis", "connect_redis", "redis_client", "redis_context"]

log = structlog.get_logger()

RedisClient: TypeAlias = Redis | RedisCluster
"""What every service holds: a client of one Redis (standalone, sentinel) or of a Redis Cluster."""


def _urls(url: str) -> list[str]:
    return [part.strip() for part in url.split(",") if part.strip()]


def redis_client(
    url: str,
    *,
    mode: str = "standalone",
    sentinel_master: str = "mymaster",
    pool_size: int = 64,
    pool_timeout_s: float = 2.0,
    socket_timeout_s: float = 2.0,
) -> RedisClient:
    """A client on bounded pools; every service decodes responses to ``str``.

    Ping a cluster client once before concurrent use (``connect_redis`` does): redis-py 8.1 loads the slot map on
    the first command, and commands that race that first load can find their new connection closed under them.
    """
    # One immediate retry on a broken connection (a restarted Redis); more would hold requests past their 503.
    common = {"socket_timeout": socket_timeout_s, "socket_connect_timeout": socket_timeout_s, "decode_responses": True}
    if mode == "cluster":
        first = urlsplit(_urls(url)[0])
        nodes = [ClusterNode(urlsplit(u).hostname or "127.0.0.1", urlsplit(u).port or 6379) for u in _urls(url)]
        return RedisCluster(
            startup_nodes=nodes,
            username=first.username,
            password=first.password,
            max_connections=pool_size,
            # A failover moves slots: the client refreshes its slot map and tries again, a few times within about a
            # second (a replica takes over a dead master in ~1-2 s with cluster-node-timeout 1000).
            retry=Retry(ExponentialBackoff(cap=0.4, base=0.05), 4),
            **common,  # type: ignore[arg-type]
        )
    if mode == "sentinel":
        first = urlsplit(_urls(url)[0])
        sentinels = [(urlsplit(u).hostname or "127.0.0.1", urlsplit(u).port or 26379) for u in _urls(url)]
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            sentinels, sentinel_kwargs={"socket_timeout": socket_timeout_s, "password": first.password}
        )
        return cast(
            Redis,
            sentinel.master_for(
                sentinel_master,
                connection_pool_class=SentinelConnectionPool,
                max_connections=pool_size,
                password=first.password,
                retry=Retry(NoBackoff(), 1),
                **common,  # type: ignore[arg-type]
            ),
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_timeout_s,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        **common,
    )
    return Redis.from_pool(pool)


async def connect_redis(settings: ServiceSettings, *, retries: int = 5, delay_s: float = 0.5) -> RedisClient:
    """Connect with ``settings``' mode and pool bounds and ping, retrying ``retries`` times."""
    url = settings.redis_url
    client = redis_client(
        url,
        mode=settings.redis_mode,
        sentinel_master=settings.redis_sentinel_master,
        pool_size=settings.redis_pool_size,
        pool_timeout_s=settings.redis_pool_timeout_s,
        socket_timeout_s=settings.redis_socket_timeout_s,
    )
    for remaining in range(retries, -1, -1):
        try:
            await client.ping()
            break
        except (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError) as exc:
            if remaining == 0:
                await close_redis(client)
                raise
            log.warning("redis_connect_retry", url=redact_url(url), error=str(exc), retries_remaining=remaining)
            await asyncio.sleep(delay_s)
    log.info("redis_connected", url=redact_url(url), mode=settings.redis_mode, pool_size=settings.redis_pool_size)
    return client


async def close_redis(client: RedisClient) -> None:
    """Close ``client`` and, in sentinel mode, its connections to the sentinels (``aclose`` leaves those open)."""
    await client.aclose()
    if isinstance(client, Redis) and isinstance(client.connection_pool, SentinelConnectionPool):
        for sentinel in client.connection_pool.sentinel_manager.sentinels:
            await sentinel.aclose()


def redis_context(settings: ServiceSettings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        client = await connect_redis(settings)
        app[REDIS] = client
        yield
        await close_redis(client)

    return ctx

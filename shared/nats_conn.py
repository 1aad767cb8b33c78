"""NATS connection as an aiohttp ``cleanup_ctx``: connect with logged callbacks, ensure streams, drain at exit.

Failure model: after the first connection the client reconnects forever. While it is disconnected, publishes are
buffered up to ``NATS_PENDING_BYTES`` and fail at once past it (``OutboundBufferLimitError``); requests fail with
``TimeoutError`` or ``NoRespondersError``; a flush waits at most ``NATS_TIMEOUT_S``. The HTTP edge turns each of these
into 503 ``unavailable`` with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import nats
import structlog
from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.errors import NoServersError

from .keys import JETSTREAM, NATS
from .messaging import ensure_streams
from .settings import ServiceSettings, redact_url

__all__ = ["connect_nats", "nats_context"]

log = structlog.get_logger()


async def connect_nats(
    url: str,
    name: str,
    *,
    retries: int = 5,
    delay_s: float = 0.5,
    pending_bytes: int = 2 * 1024 * 1024,
    timeout_s: float = 2.0,
) -> NatsClient:
    """Connect to NATS, retrying the first connection; later disconnects reconnect forever.

    Args:
        pending_bytes: what may be buffered for sending while disconnected (nats-py's ``pending_size``).
        timeout_s: connect and flush deadline.
    """

    async def error_cb(exc: Exception) -> None:
        log.warning("nats_error", client=name, error=repr(exc))

    async def disconnected_cb() -> None:
        log.warning("nats_disconnected", client=name)

    async def reconnected_cb() -> None:
        log.info("nats_reconnected", client=name)

    async def closed_cb() -> None:
        log.info("nats_closed", client=name)

    servers = [s.strip() for s in url.split(",") if s.strip()]
    for remaining in range(retries, -1, -1):
        try:
            nc = await nats.connect(
                servers=servers,
                name=name,
                error_cb=error_cb,
                disconnected_cb=disconnected_cb,
                reconnected_cb=reconnected_cb,
                closed_cb=closed_cb,
                connect_timeout=max(1, round(timeout_s)),
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                pending_size=pending_bytes,
                flush_timeout=timeout_s,
                # A dead server is noticed within ~10 s even without traffic (default: 2 min x 2 pings).
                ping_interval=5,
                max_outstanding_pings=2,
            )
            break
        except (NoServersError, OSError, TimeoutError) as exc:
            if remaining == 0:
                raise
            log.warning("nats_connect_retry", url=redact_url(url), error=repr(exc), retries_remaining=remaining)
            await asyncio.sleep(delay_s)
    log.info("nats_connected", url=redact_url(url), client=name)
    return nc


def nats_context(settings: ServiceSettings, name: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        nc = await connect_nats(
            settings.nats_url, name, pending_bytes=settings.nats_pending_bytes, timeout_s=settings.nats_timeout_s
        )
        js = nc.jetstream()
        await ensure_streams(js, replicas=settings.nats_stream_replicas, max_bytes=settings.nats_stream_max_bytes)
        app[NATS] = nc
        app[JETSTREAM] = js
        yield
        # Drain lets in-flight handlers finish (they may still use Redis, which closes after us); with the server
        # unreachable there is nothing to drain to, so just close.
        if nc.is_connected:
            await nc.drain()
        elif not nc.is_closed:
            await nc.close()

    return ctx

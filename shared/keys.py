"""Application keys for the resources the shared connection contexts put on every service's app."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

if TYPE_CHECKING:
    from .redis_conn import RedisClient
    from .tasks import LoopHealth

__all__ = ["BACKGROUND", "JETSTREAM", "NATS", "REDIS", "WEBSOCKETS"]

REDIS: web.AppKey[RedisClient] = web.AppKey("cobrowse_redis")
NATS = web.AppKey("cobrowse_nats", NatsClient)
JETSTREAM = web.AppKey("cobrowse_jetstream", JetStreamContext)
NATS_RECONNECTED = web.AppKey("cobrowse_nats_reconnected", list[Callable[[], None]])
"""Hooks called after every NATS reconnect (e.g. to retry what failed while disconnected at once)."""
WEBSOCKETS = web.AppKey("cobrowse_websockets", weakref.WeakSet[web.WebSocketResponse])
BACKGROUND = web.AppKey("cobrowse_background", dict[str, "LoopHealth"])
"""Health of the app's supervised background loops by name (``shared.tasks``), reported by ``/readyz``."""

"""Application keys for the resources the shared connection contexts put on every service's app."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from redis.asyncio import Redis

if TYPE_CHECKING:
    from .tasks import LoopHealth

__all__ = ["BACKGROUND", "JETSTREAM", "NATS", "REDIS", "WEBSOCKETS"]

REDIS = web.AppKey("cobrowse_redis", Redis)
NATS = web.AppKey("cobrowse_nats", NatsClient)
JETSTREAM = web.AppKey("cobrowse_jetstream", JetStreamContext)
WEBSOCKETS = web.AppKey("cobrowse_websockets", weakref.WeakSet[web.WebSocketResponse])
BACKGROUND = web.AppKey("cobrowse_background", dict[str, "LoopHealth"])
"""Health of the app's supervised background loops by name (``shared.tasks``), reported by ``/readyz``."""

"""Application keys for the resources the shared connection contexts put on every service's app."""

from __future__ import annotations

import weakref

from aiohttp import web
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from redis.asyncio import Redis

__all__ = ["JETSTREAM", "NATS", "REDIS", "WEBSOCKETS"]

REDIS = web.AppKey("cobrowse_redis", Redis)
NATS = web.AppKey("cobrowse_nats", NatsClient)
JETSTREAM = web.AppKey("cobrowse_jetstream", JetStreamContext)
WEBSOCKETS = web.AppKey("cobrowse_websockets", weakref.WeakSet[web.WebSocketResponse])

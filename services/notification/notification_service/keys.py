"""Application keys of the notification service (shared resources use ``shared.keys``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from shared.accounts import AccountStore

from .connections import Connections
from .dashboard import Fanout
from .desk import Desk
from .settings import Settings
from .store import Store

__all__ = [
    "ACCOUNTS",
    "AGENT_CONNS",
    "BACKGROUND",
    "CONNECTIONS",
    "DESK",
    "FANOUT",
    "SETTINGS",
    "SNAPSHOTS",
    "STORE",
    "SnapshotCache",
]


@dataclass
class SnapshotCache:
    """The last dashboard snapshot of this replica; clients connecting together share one."""

    id: int = 0
    frame: str | None = None
    built_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


SETTINGS = web.AppKey("notify_settings", Settings)
STORE = web.AppKey("notify_store", Store)
ACCOUNTS = web.AppKey("notify_accounts", AccountStore)
DESK = web.AppKey("notify_desk", Desk)
FANOUT = web.AppKey("notify_fanout", Fanout)
AGENT_CONNS = web.AppKey("notify_agent_conns", dict[str, str])
"""Agent sockets open on this replica: connection id -> agent id (for presence refresh only)."""
SNAPSHOTS = web.AppKey("notify_snapshots", SnapshotCache)
CONNECTIONS = web.AppKey("notify_connections", Connections)
"""This replica's open sockets and streams by account (caps, revocation)."""
BACKGROUND = web.AppKey("notify_background", set[asyncio.Task[None]])
"""Work that outlives the request that started it (agent disconnect clean-ups); awaited at shutdown."""

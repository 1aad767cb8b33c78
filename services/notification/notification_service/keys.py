"""Application keys of the notification service (shared resources use ``shared.keys``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from shared.accounts import AccountStore

from .claims import Claims
from .connections import Connections
from .dashboard import Fanout
from .intake import Intake
from .outbox import Outbox
from .settings import Settings
from .store import Store
from .timeouts import Alarm, Timeouts

__all__ = [
    "ACCOUNTS",
    "AGENT_CONNS",
    "ALARM",
    "BACKGROUND",
    "CLAIMS",
    "CONNECTIONS",
    "FANOUT",
    "INTAKE",
    "OUTBOX",
    "SETTINGS",
    "SNAPSHOTS",
    "STORE",
    "TIMEOUTS",
    "AgentConn",
    "SnapshotCache",
]


@dataclass
class SnapshotCache:
    """The last dashboard snapshot of this replica; clients connecting together share one."""

    id: int = 0
    frame: str | None = None
    built_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class AgentConn:
    """An agent socket open on this replica: whose, and the desk whose presence key it keeps alive."""

    agent_id: str
    desk: str


SETTINGS = web.AppKey("notify_settings", Settings)
STORE = web.AppKey("notify_store", Store)
ACCOUNTS = web.AppKey("notify_accounts", AccountStore)
OUTBOX = web.AppKey("notify_outbox", Outbox)
ALARM = web.AppKey("notify_alarm", Alarm)
INTAKE = web.AppKey("notify_intake", Intake)
"""Session events, dispatch, customers' cancels."""
CLAIMS = web.AppKey("notify_claims", Claims)
"""Agents' consoles: status, claims, declines, releases."""
TIMEOUTS = web.AppKey("notify_timeouts", Timeouts)
"""Offer timeouts and escalations (fired by the timer loop)."""
FANOUT = web.AppKey("notify_fanout", Fanout)
AGENT_CONNS = web.AppKey("notify_agent_conns", dict[str, AgentConn])
"""Agent sockets open on this replica by connection id (for presence refresh only)."""
SNAPSHOTS = web.AppKey("notify_snapshots", SnapshotCache)
CONNECTIONS = web.AppKey("notify_connections", Connections)
"""This replica's open sockets and streams by account (caps, revocation)."""
BACKGROUND = web.AppKey("notify_background", set[asyncio.Task[None]])
"""Work that outlives the request that started it (agent disconnect clean-ups); awaited at shutdown."""

"""Application keys of the notification service (shared resources use ``shared.keys``)."""

from __future__ import annotations

from aiohttp import web

from shared.accounts import AccountStore

from .dashboard import Fanout
from .desk import Desk
from .settings import Settings
from .store import Store

__all__ = ["ACCOUNTS", "AGENT_CONNS", "DESK", "FANOUT", "SETTINGS", "STORE"]

SETTINGS = web.AppKey("notify_settings", Settings)
STORE = web.AppKey("notify_store", Store)
ACCOUNTS = web.AppKey("notify_accounts", AccountStore)
DESK = web.AppKey("notify_desk", Desk)
FANOUT = web.AppKey("notify_fanout", Fanout)
AGENT_CONNS = web.AppKey("notify_agent_conns", dict[str, str])
"""Agent sockets open on this replica: connection id -> agent id (for presence refresh only)."""

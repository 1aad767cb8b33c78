"""Typed application keys of the session registry."""

from __future__ import annotations

from aiohttp import web

from shared.accounts import AccountStore

from .settings import Settings
from .store import SessionStore

__all__ = ["ACCOUNTS", "SETTINGS", "STORE"]

SETTINGS = web.AppKey("registry_settings", Settings)
STORE = web.AppKey("registry_store", SessionStore)
ACCOUNTS = web.AppKey("registry_accounts", AccountStore)

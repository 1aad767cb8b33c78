"""Typed application keys of the session registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from shared.accounts import AccountStore

from .settings import Settings
from .store import SessionStore

if TYPE_CHECKING:
    from .correlation import Correlator

__all__ = ["ACCOUNTS", "CORRELATOR", "SETTINGS", "STORE"]

SETTINGS = web.AppKey("registry_settings", Settings)
STORE = web.AppKey("registry_store", SessionStore)
ACCOUNTS = web.AppKey("registry_accounts", AccountStore)
CORRELATOR: web.AppKey[Correlator] = web.AppKey("registry_correlator")
"""Present only when Zoom's REST API is configured (``correlation.py``)."""

"""Prometheus metrics of this replica (served by ``/metrics``); fleet-wide numbers come from ``GET /stats``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "AGENT_SOCKETS",
    "CLAIMS",
    "DASHBOARD_CLIENTS",
    "DASHBOARD_DROPS",
    "OFFERS",
    "OFFER_TIMEOUTS",
    "WAIT_SECONDS",
]

OFFERS = Counter("notify_offers_total", "Requests shown to agents (offers and broadcast copies)", ["queue"])
CLAIMS = Counter("notify_claims_total", "Requests claimed by an agent", ["queue"])
OFFER_TIMEOUTS = Counter("notify_offer_timeouts_total", "Offers that lapsed unanswered", ["queue"])
WAIT_SECONDS = Histogram(
    "notify_wait_seconds",
    "Time from queueing to claim",
    ["queue"],
    buckets=(1, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
AGENT_SOCKETS = Gauge("notify_agent_sockets", "Agent WebSockets open on this replica")
DASHBOARD_CLIENTS = Gauge("notify_dashboard_clients", "Dashboard streams open on this replica")
DASHBOARD_DROPS = Counter("notify_dashboard_drops_total", "Dashboard clients dropped", ["reason"])

"""Prometheus metrics (``/metrics``).

Counters and histograms count what this replica did (sum them over replicas). The ``notify_queue_*`` gauges are
fleet-wide, read from Redis every ``NOTIFY_METRICS_REFRESH_S`` by each replica (so take ``max`` over replicas).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "QUEUE_AGENTS",
    "QUEUE_LONGEST_WAIT",
    "QUEUE_WAITING",
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
QUEUE_WAITING = Gauge("notify_queue_waiting", "Requests waiting in the queue (fleet-wide)", ["queue"])
QUEUE_LONGEST_WAIT = Gauge("notify_queue_longest_wait_seconds", "Longest current wait in the queue", ["queue"])
QUEUE_AGENTS = Gauge("notify_queue_agents", "Agents serving the queue, by status", ["queue", "status"])

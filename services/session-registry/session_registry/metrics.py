"""Prometheus metrics of the session registry (served by the shared ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["BEACON_EVENTS", "EVENTS_PUBLISHED", "OUTBOX_PENDING", "TIMERS_FIRED"]

BEACON_EVENTS = Counter(
    "cobrowse_registry_events_total", "Events received from beacons and webhooks", ["source", "outcome"]
)
EVENTS_PUBLISHED = Counter("cobrowse_registry_events_published_total", "SessionEvents stored by JetStream")
OUTBOX_PENDING = Gauge(
    "cobrowse_registry_outbox_pending", "SessionEvents waiting in the Redis outbox (seen by the publishing replica)"
)
TIMERS_FIRED = Counter("cobrowse_registry_timers_fired_total", "Sessions ended by a timer (this replica)")

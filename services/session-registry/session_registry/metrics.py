"""Prometheus metrics of the session registry (served by the shared ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = ["EVENTS", "EVENTS_PUBLISHED", "EVENT_OUTCOMES", "OUTBOX_PENDING", "TIMERS_FIRED"]

EVENTS = Counter("cobrowse_registry_events_total", "Events received (beacons, webhooks, staff)", ["source", "outcome"])
EVENT_OUTCOMES = {
    source: tuple(EVENTS.labels(source, outcome) for outcome in ("applied", "ignored", "duplicate"))
    for source in ("beacon", "webhook", "api")
}
"""(applied, ignored, duplicate) children per source, looked up once for the hot path."""
EVENTS_PUBLISHED = Counter("cobrowse_registry_events_published_total", "SessionEvents stored by JetStream")
OUTBOX_PENDING = Gauge(
    "cobrowse_registry_outbox_pending", "SessionEvents waiting in the Redis outbox (seen by the publishing replica)"
)
TIMERS_FIRED = Counter("cobrowse_registry_timers_fired_total", "Sessions ended by a timer (this replica)")

"""Prometheus metrics of the token service (served by the shared ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["CUSTOMER_TOKENS", "TOKENS_ISSUED", "TOKENS_REFUSED"]

TOKENS_ISSUED = Counter("cobrowse_tokens_issued_total", "Zoom Cobrowse tokens signed", ["role"])
TOKENS_REFUSED = Counter("cobrowse_tokens_refused_total", "Token requests refused", ["reason"])
CUSTOMER_TOKENS = TOKENS_ISSUED.labels("customer")
"""The hot path's child, looked up once."""

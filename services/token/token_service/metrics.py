"""Prometheus metrics of the token service (served by the shared ``/metrics``)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from prometheus_client import Counter

from shared.errors import CobrowseError

__all__ = ["CUSTOMER_TOKENS", "TOKENS_ISSUED", "TOKENS_REFUSED", "counts_refusals"]

P = ParamSpec("P")
R = TypeVar("R")

TOKENS_ISSUED = Counter("cobrowse_tokens_issued_total", "Zoom Cobrowse tokens signed", ["role"])
TOKENS_REFUSED = Counter("cobrowse_tokens_refused_total", "Token and session requests refused, by error code", ["code"])
CUSTOMER_TOKENS = TOKENS_ISSUED.labels("customer")
"""The hot path's child, looked up once."""


def counts_refusals(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Count every ``CobrowseError`` that ``func`` raises in ``TOKENS_REFUSED`` by its code, then re-raise it."""

    @functools.wraps(func)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await func(*args, **kwargs)
        except CobrowseError as exc:
            TOKENS_REFUSED.labels(exc.code).inc()
            raise

    return wrapped

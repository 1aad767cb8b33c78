"""What a dependency outage looks like from our code: the Redis and NATS errors that mean "unreachable, slow, or no
connection free in time", as opposed to a bug.

Every edge uses ``outage_of`` to answer such an error the same way (HTTP 503 ``unavailable`` with ``Retry-After``, a
NATS service error 503) and to log it at warning without a traceback.
"""

from __future__ import annotations

from nats import errors as nats_errors
from nats.js import errors as js_errors
from redis import exceptions as redis_errors

__all__ = ["outage_of"]

_OUTAGES: tuple[tuple[str, tuple[type[BaseException], ...]], ...] = (
    ("redis", (redis_errors.ConnectionError, redis_errors.TimeoutError)),
    (
        "nats",
        (
            nats_errors.ConnectionClosedError,
            nats_errors.ConnectionDrainingError,
            nats_errors.ConnectionReconnectingError,
            nats_errors.FlushTimeoutError,
            nats_errors.NoRespondersError,
            nats_errors.NoServersError,
            nats_errors.OutboundBufferLimitError,
            nats_errors.StaleConnectionError,
            nats_errors.TimeoutError,
            nats_errors.UnexpectedEOF,
            js_errors.ServiceUnavailableError,
        ),
    ),
)


def outage_of(exc: BaseException) -> str | None:
    """The dependency (``"redis"``, ``"nats"``) whose outage ``exc`` is, or ``None`` for any other error.

    An exception group (a task group's) is an outage when every exception in it is one.
    """
    if isinstance(exc, BaseExceptionGroup):
        kinds = [outage_of(inner) for inner in exc.exceptions]
        return kinds[0] if all(kinds) else None
    for name, classes in _OUTAGES:
        if isinstance(exc, classes):
            return name
    return None

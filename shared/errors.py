"""One error hierarchy for every service, translated to HTTP, NATS and WebSocket only at the edges.

::

    CobrowseError                 500 internal (base; never raised directly for expected failures)
    ├── BadRequest                400 bad_request
    │   └── ValidationFailed      400 validation_failed   (carries ``errors``: [{property, reason}])
    ├── Unauthorized              401 unauthorized
    ├── Forbidden                 403 forbidden
    ├── NotFound                  404 not_found
    ├── Conflict                  409 conflict
    ├── PayloadTooLarge           413 payload_too_large
    ├── UnsupportedMediaType      415 unsupported_media_type
    ├── RequestTimeout            408 request_timeout
    ├── RateLimited               429 rate_limited        (carries ``retry_after`` seconds)
    ├── Unavailable               503 unavailable         (carries ``retry_after`` seconds)
    └── RemoteError               any status, the code a remote service answered with over NATS

Subclasses may set a more specific ``code`` (e.g. ``Conflict(code="pin_taken")``). Messages are for humans;
clients and tests match on ``code`` and ``status``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "CobrowseError",
    "Conflict",
    "FieldError",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RemoteError",
    "RequestTimeout",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationFailed",
]

FieldError = dict[str, str]
"""One problem with one field: ``{"property": "role", "reason": "..."}``."""


class CobrowseError(Exception):
    default_status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal"
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None, *, code: str | None = None, status: int | None = None) -> None:
        self.message = message or self.default_message
        self.code = code or self.default_code
        self.status = status or self.default_status
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body sent to clients."""
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(CobrowseError):
    default_status = 400
    default_code = "bad_request"
    default_message = "bad request"


class ValidationFailed(BadRequest):
    """Request fields failed validation; every bad field is listed at once."""

    default_code = "validation_failed"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        names = ", ".join(e["property"] for e in errors)
        super().__init__(f"invalid fields: {names}")

    def to_dict(self) -> dict[str, Any]:
        # ``errors`` keeps the shape of Zoom's auth sample, so its clients keep working.
        return {**super().to_dict(), "errors": self.errors}

    @classmethod
    def one(cls, prop: str, reason: str) -> ValidationFailed:
        return cls([{"property": prop, "reason": reason}])


class Unauthorized(CobrowseError):
    default_status = 401
    default_code = "unauthorized"
    default_message = "a valid API key is required"


class Forbidden(CobrowseError):
    default_status = 403
    default_code = "forbidden"
    default_message = "not allowed"


class NotFound(CobrowseError):
    default_status = 404
    default_code = "not_found"
    default_message = "not found"


class Conflict(CobrowseError):
    default_status = 409
    default_code = "conflict"
    default_message = "conflict"


class PayloadTooLarge(CobrowseError):
    default_status = 413
    default_code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"body larger than {limit} bytes")


class UnsupportedMediaType(CobrowseError):
    default_status = 415
    default_code = "unsupported_media_type"
    default_message = "send a JSON body (Content-Type: application/json)"


class RateLimited(CobrowseError):
    default_status = 429
    default_code = "rate_limited"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(message or f"too many requests; retry after {self.retry_after} s")


class Unavailable(CobrowseError):
    """A dependency (Redis, NATS, another service) is down or saturated; the client should retry later."""

    default_status = 503
    default_code = "unavailable"
    default_message = "a backing service is unavailable"

    def __init__(self, message: str | None = None, *, code: str | None = None, retry_after: int = 1) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(message, code=code)


class RequestTimeout(CobrowseError):
    """The client did not send its request body in time."""

    default_status = 408
    default_code = "request_timeout"
    default_message = "the request body did not arrive in time"


class RemoteError(CobrowseError):
    """An error answered by another service over NATS, re-raised with its original status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code, status=status)

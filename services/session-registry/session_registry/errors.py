"""Registry-specific errors (subclasses of the shared hierarchy)."""

from __future__ import annotations

from shared.errors import Unauthorized, ValidationFailed

__all__ = ["BadSignature", "UnknownEvent"]


class UnknownEvent(ValidationFailed):
    """A beacon named an event the registry does not know; ``errors`` names each one by index."""

    default_code = "unknown_event"


class BadSignature(Unauthorized):
    """A Zoom webhook whose signature does not verify or whose timestamp is stale."""

    default_code = "bad_signature"
    default_message = "webhook signature does not verify"

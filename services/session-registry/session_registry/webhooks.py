"""Zoom webhooks (``cobrowse.*`` event subscriptions): signature checks and translation into registry events.

Zoom signs ``v0:<x-zm-request-timestamp>:<raw body>`` with HMAC-SHA256 under the app's webhook secret token and
sends ``v0=<hex>`` as ``x-zm-signature``; the URL validation challenge is signed the same way and answered with
``{plainToken, encryptedToken = hex HMAC-SHA256(secret, plainToken)}``.

Correlation (Zoom's ``session_id`` is its own, not ours; see docs/session-registry.md): a webhook belongs to a
registry session through, in order, a mapping saved from an earlier webhook, a PIN field in the payload
(``session_pin``, ``pin_code``, ``pincode``, ``pinCode``), or a customer ``user_id`` equal to a registry session id.
Real Zoom sends a PIN only with ``session_ended``: the other kinds name Zoom's session id alone and are resolved
through Zoom's REST API in the background (``correlation.py``) when it is configured.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .beacons import normalise_pin
from .errors import BadSignature
from .store import Event

__all__ = [
    "ZoomEvent",
    "ZoomWebhook",
    "parse_zoom_event",
    "url_validation_reply",
    "verify_signature",
]

PIN_FIELDS = ("session_pin", "pin_code", "pincode", "pinCode")
ZOOM_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")
"""Zoom's session ids (base64-like); anything else is not used as a key or in a URL."""
TIMESTAMP_RE = re.compile(r"[0-9]{1,13}")
"""Epoch seconds as Zoom sends them: digits only, so no ``nan``, ``inf``, sign or exponent can skip the age check."""


def _hmac_hex(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: bytes, *, timestamp: str | None, signature: str | None, body: bytes, tolerance_s: float
) -> None:
    """Raise ``BadSignature`` unless ``signature`` signs ``body`` at a ``timestamp`` within the tolerance."""
    if not timestamp or not signature:
        raise BadSignature("x-zm-signature and x-zm-request-timestamp are required", code="signature_missing")
    if not TIMESTAMP_RE.fullmatch(timestamp):
        raise BadSignature("x-zm-request-timestamp must be epoch seconds", code="bad_timestamp")
    if not signature.isascii():
        # compare_digest refuses non-ASCII str with a TypeError; no valid signature has such a character anyway
        raise BadSignature()
    sent_at = int(timestamp)
    expected = "v0=" + _hmac_hex(secret, b"v0:" + timestamp.encode() + b":" + body)
    if not hmac.compare_digest(expected, signature):
        raise BadSignature()
    if abs(time.time() - sent_at) > tolerance_s:
        raise BadSignature("webhook timestamp is too old or in the future", code="stale_timestamp")


def url_validation_reply(secret: bytes, plain_token: str) -> dict[str, str]:
    return {"plainToken": plain_token, "encryptedToken": _hmac_hex(secret, plain_token.encode())}


class ZoomWebhook(BaseModel):
    """The envelope every Zoom webhook shares."""

    model_config = ConfigDict(extra="ignore")

    event: str = Field(max_length=128)
    event_ts: float | None = Field(None, ge=0, allow_inf_nan=False)
    """Milliseconds since the epoch."""
    payload: dict[str, Any] = Field(default_factory=dict)


@dataclass
class ZoomEvent:
    """One cobrowse webhook, translated: whom it may concern and what it does to the session."""

    zoom_session_id: str | None
    pin: str | None
    user_session_id: str | None
    events: list[Event] = field(default_factory=list)


_USER_EVENTS = {
    ("cobrowse.session_user_joined", "agent"): "agent_joined",
    ("cobrowse.session_user_joined", "customer"): "customer_joined",
    ("cobrowse.session_user_left", "agent"): "agent_left",
    ("cobrowse.session_user_left", "customer"): "customer_left",
}


def parse_zoom_event(body: ZoomWebhook, raw: bytes) -> ZoomEvent | None:
    """The registry events for a ``cobrowse.*`` webhook, or ``None`` for any other event."""
    name = body.event
    obj = body.payload.get("object")
    if not isinstance(obj, dict):
        return None
    role = str(obj.get("role_type", "")).lower()
    if name == "cobrowse.session_started":
        mapped: str | None = "session_started"
    elif name == "cobrowse.session_ended":
        mapped = "session_ended"
    else:
        mapped = _USER_EVENTS.get((name, role))
    if mapped is None:
        return None
    zoom_session_id = obj.get("session_id")
    zoom_id = zoom_session_id if isinstance(zoom_session_id, str) else ""
    pin = next((p for p in (normalise_pin(obj.get(f)) for f in PIN_FIELDS) if p), None)
    user_id = obj.get("user_id")
    # Zoom retries a delivery with the same body, so the body's digest is a stable event id.
    event: Event = {
        "id": "zoom-" + hashlib.sha256(raw).hexdigest()[:40],
        "name": mapped,
        "ts": int(body.event_ts or 0),
        "seq": 0,
    }
    if mapped == "session_ended":
        event["reason"] = "ended_by_zoom"
    return ZoomEvent(
        zoom_session_id=zoom_id if ZOOM_ID_RE.fullmatch(zoom_id) else None,
        pin=pin,
        user_session_id=user_id if role == "customer" and isinstance(user_id, str) and user_id else None,
        events=[event],
    )

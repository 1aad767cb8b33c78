"""Beacon bodies: parsing and validation, event by event, before any of it is applied.

A body is ``{session_id, token, events: [{id, name, ts, seq, payload}]}`` or the same with one ``event``.
Browsers send it with ``navigator.sendBeacon`` (``text/plain``) or ``fetch`` (JSON), so the credential travels in
the body. A bad envelope (JSON, session id, token, no events, too many) refuses the whole body; past it each event
stands alone (contract 10): the good ones are applied and each bad one is reported by index, so one event a page
got wrong never costs it the rest of its batch. A batch whose every event is bad is refused (400), listing them all.

Two paths, one answer: a body that is entirely good (no field beacon.js does not send, no more brackets than
``parse_json``'s depth limit could nest, every number finite) is validated in one step by pydantic's JSON parser,
a beacon's most frequent case at a fraction of the cost; anything else goes the full way (``parse_json``, then
each event on its own), which alone decides what is wrong and how it is reported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import FieldError, ValidationFailed
from shared.jsonbody import MAX_DEPTH, parse_json
from shared.rpc import validation_errors

from .errors import UnknownEvent
from .store import Event

__all__ = ["KNOWN_EVENTS", "BeaconBatch", "ParsedBeacon", "parse_beacon", "parse_body"]

M = TypeVar("M", bound=BaseModel)

SDK_EVENTS = frozenset(
    {
        "pincode_updated",
        "session_started",
        "agent_joined",
        "agent_left",
        "session_reconnecting",
        "session_ended",
        "session_error",
        "remote_assist_started",
        "remote_assist_stopped",
    }
)
CLIENT_EVENTS = frozenset({"heartbeat", "page_hidden", "page_visible", "unknown_sdk_event"})
KNOWN_EVENTS = SDK_EVENTS | CLIENT_EVENTS

PIN_RE = re.compile(r"[A-Za-z0-9]{1,10}")
REASON_RE = re.compile(r"[a-z0-9_]{1,64}")
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
JS_SAFE_INTEGER = 2**53 - 1  # what a page can count to exactly; Lua's numbers are doubles too


class BeaconEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(max_length=64)
    ts: float = Field(ge=0, le=JS_SAFE_INTEGER)
    """Client time, epoch milliseconds."""
    seq: int = Field(ge=0, le=JS_SAFE_INTEGER)
    """Per-session sequence number from the page."""
    payload: dict[str, Any] = Field(default_factory=dict)


class BeaconBatch(BaseModel):
    """The envelope; its events are validated one by one afterwards."""

    model_config = ConfigDict(extra="ignore")

    session_id: str = Field(pattern=ID_PATTERN)
    token: str = Field(max_length=256)
    events: list[Any] | None = None
    event: Any = None


class _GoodEvent(BeaconEvent):
    # No field it would ignore (where a non-finite number could hide) and a finite ts: anything else, the full way.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _GoodBeacon(BaseModel):
    """The fast path's whole body: envelope and events validated in one step (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(pattern=ID_PATTERN)
    token: str = Field(max_length=256)
    events: list[_GoodEvent] | None = None
    event: _GoodEvent | None = None


def _all_finite(value: object) -> bool:
    """No NaN or infinity in a payload (pydantic's parser reads ``NaN``, ``Infinity`` and ``1e400`` as floats)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, float):
            if not math.isfinite(node):
                return False
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return True


@dataclass(frozen=True, slots=True)
class ParsedBeacon:
    session_id: str
    token: str
    """The session token, not yet verified."""
    events: list[Event]
    """The good events, normalised for ``apply.lua``, in the order sent."""
    rejected: list[dict[str, Any]]
    """Each bad event: ``{index, property, reason}`` (``property`` as ``events.<i>.<field>``)."""


def normalise_pin(value: object) -> str | None:
    """A PIN as Zoom stores it (letters and digits, at most 10, upper case), or ``None`` if it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and PIN_RE.fullmatch(value):
        return value.upper()
    return None


def _normalise(index: int, event: BeaconEvent, errors: list[FieldError]) -> Event:
    where = f"events.{index}"
    out: Event = {"id": event.id, "name": event.name, "ts": int(event.ts), "seq": event.seq}
    payload = event.payload
    if event.name == "pincode_updated":
        raw = payload.get("pinCode", payload.get("pincode"))
        pin = normalise_pin(raw)
        if pin is None:
            errors.append({"property": f"{where}.payload.pinCode", "reason": "must be 1-10 letters or digits"})
        out["pin"] = pin
    elif event.name == "session_error":
        code = payload.get("code")
        out["code"] = str(code)[:32] if isinstance(code, str | int) and not isinstance(code, bool) else ""
    elif event.name in ("session_ended", "page_hidden"):
        reason = payload.get("reason")
        if isinstance(reason, str) and REASON_RE.fullmatch(reason):
            out["reason"] = reason
    elif event.name == "unknown_sdk_event":
        original = payload.get("original_name")
        if not isinstance(original, str) or not 0 < len(original) <= 100:
            errors.append({"property": f"{where}.payload.original_name", "reason": "must be a string of 1-100"})
        out["original_name"] = original
    return out


def _event(index: int, raw: object) -> tuple[Event | None, list[FieldError]]:
    where = f"events.{index}"
    try:
        event = BeaconEvent.model_validate(raw)
    except ValidationError as exc:
        return None, [{"property": ".".join([where, *map(str, e["loc"])]), "reason": e["msg"]} for e in exc.errors()]
    if event.name not in KNOWN_EVENTS:
        return None, [{"property": f"{where}.name", "reason": f"unknown event {event.name!r}"}]
    errors: list[FieldError] = []
    normalised = _normalise(index, event, errors)
    return (None, errors) if errors else (normalised, [])


def parse_body(raw: bytes, model: type[M]) -> M:
    """An untrusted JSON body as ``model``: ``BadRequest`` for bad JSON, ``ValidationFailed`` naming bad fields."""
    try:
        return model.model_validate(parse_json(raw))
    except ValidationError as exc:
        raise ValidationFailed(validation_errors(exc)) from exc


def parse_beacon(raw: bytes, *, max_events: int) -> ParsedBeacon:
    """Validate a beacon body; a bad envelope or a batch of only bad events raises a 400 error."""
    return _all_good(raw, max_events) or _event_by_event(raw, max_events)


def _all_good(raw: bytes, max_events: int) -> ParsedBeacon | None:
    """The body when every part of it is good (the fast path), else ``None``: ``_event_by_event`` decides."""
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
        return None  # it may nest deeper than parse_json allows
    try:
        body = _GoodBeacon.model_validate_json(raw)
    except ValidationError:
        return None
    given = body.events if body.events is not None else ([body.event] if body.event is not None else [])
    if not 0 < len(given) <= max_events:
        return None
    events: list[Event] = []
    errors: list[FieldError] = []
    for index, event in enumerate(given):
        if event.name not in KNOWN_EVENTS or (event.payload and not _all_finite(event.payload)):
            return None
        events.append(_normalise(index, event, errors))
    if errors:
        return None
    return ParsedBeacon(session_id=body.session_id, token=body.token, events=events, rejected=[])


def _event_by_event(raw: bytes, max_events: int) -> ParsedBeacon:
    batch = parse_body(raw, BeaconBatch)
    raw_events = batch.events if batch.events is not None else ([batch.event] if batch.event is not None else [])
    if not raw_events:
        raise ValidationFailed.one("events", "at least one event is required (events or event)")
    if len(raw_events) > max_events:
        raise ValidationFailed.one("events", f"at most {max_events} events per beacon")
    events: list[Event] = []
    rejected: list[dict[str, Any]] = []
    all_errors: list[FieldError] = []
    for index, item in enumerate(raw_events):
        event, errors = _event(index, item)
        if event is not None:
            events.append(event)
        all_errors += errors
        rejected += [{"index": index, **error} for error in errors]
    if not events:
        unknown = all(e["reason"].startswith("unknown event") for e in all_errors)
        raise (UnknownEvent if unknown else ValidationFailed)(all_errors)
    return ParsedBeacon(session_id=batch.session_id, token=batch.token, events=events, rejected=rejected)

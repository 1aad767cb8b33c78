"""Untrusted JSON, parsed once the same way everywhere (HTTP bodies, WebSocket frames, NATS payloads).

``parse_json`` answers every bad document with our ``BadRequest`` (never ``RecursionError``, ``ValueError`` or a
float that is not finite):

- nesting deeper than ``max_depth`` is refused (a deeply nested document made the C parser recurse ~1,000 levels
  and raise ``RecursionError``, which became a 500);
- ``NaN``, ``Infinity`` and numbers that overflow to infinity (``1e400``) are refused: no timestamp, count or
  score of ours may be non-finite, and comparisons with NaN are always false (a NaN timestamp skipped an age check);
- a string with a lone surrogate escape (``"\\ud800"``, which JSON's grammar allows) is refused, as pydantic's
  parser refuses it: it is no text, no UTF-8 encoder takes it, and Redis's Lua JSON decoder failed on it (a 500).

The depth check costs nothing for small documents: a document with no more opening brackets than ``max_depth``
cannot be deeper, so only larger ones are walked (iteratively, after parsing).

``dumps`` writes our own documents (HTTP answers, the JSON arguments of Lua scripts) with orjson, a fifth of the
standard library's time on a beacon's small objects; the rare value orjson refuses (an integer past 64 bits, which
``parse_json`` lets through; a lone surrogate from anywhere else) goes the standard library's way instead.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from .errors import BadRequest

__all__ = ["MAX_DEPTH", "dumps", "parse_json"]

MAX_DEPTH = 32


def _not_finite(_value: str) -> float:
    raise ValueError("non-finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("non-finite number")
    return value


_DECODER = json.JSONDecoder(parse_constant=_not_finite, parse_float=_finite)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""An escape that may decode to a surrogate (a pair decodes to one character, which is fine)."""


def _lone_surrogate(doc: Any) -> bool:
    try:
        json.dumps(doc, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def _too_deep(doc: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``raw`` as JSON; ``BadRequest`` (code ``malformed_json``) for anything we do not accept."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        doc = _DECODER.decode(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and the non-finite refusals above.
        raise BadRequest(
            "body is not valid JSON (or nests too deep, or has a non-finite number)", code="malformed_json"
        ) from exc
    if _SURROGATE_ESCAPE.search(text) and _lone_surrogate(doc):
        raise BadRequest("body has a string with a lone surrogate (\\ud800-\\udfff)", code="malformed_json")
    opening = text.count("[") + text.count("{")
    if opening > max_depth and _too_deep(doc, max_depth):
        raise BadRequest(f"JSON nests deeper than {max_depth} levels", code="json_too_deep")
    return doc


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON (see the module docstring)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()

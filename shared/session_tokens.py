"""Session-scoped credentials for customer pages (beacons, queue position, cancel).

A token is ``v1.<session_id>.<signature>``: HMAC-SHA256 of the session id under ``SESSION_TOKEN_SECRET``,
so any service holding the secret verifies it without a Redis lookup, and it is worthless for another session.
"""

from __future__ import annotations

import base64
import functools
import hmac

from .errors import Forbidden

__all__ = ["sign_session_token", "verify_session_token"]


@functools.lru_cache(maxsize=4096)
def _signature(secret: bytes, session_id: str) -> str:
    # Cached: a page posts a beacon every few seconds for its whole session, and the HMAC (OpenSSL's algorithm
    # lookup and key schedule included) was ~2 % of a beacon's cost. The cache holds signatures of live session ids
    # only ever asked for with their secret; a guess costs the full HMAC and evicts the oldest entry at worst.
    return (
        base64.urlsafe_b64encode(hmac.digest(secret, f"session:{session_id}".encode(), "sha256")).rstrip(b"=").decode()
    )


def sign_session_token(secret: bytes, session_id: str) -> str:
    return f"v1.{session_id}.{_signature(secret, session_id)}"


def verify_session_token(secret: bytes, token: str | None, session_id: str | None = None) -> str:
    """Return the session id ``token`` was issued for, or raise ``Forbidden``.

    With ``session_id`` given, the token must belong to that session.
    """
    version, _, rest = (token or "").partition(".")
    sid, _, sig = rest.rpartition(".")
    if (
        version != "v1"
        or not sid
        or (session_id is not None and sid != session_id)
        or not hmac.compare_digest(sig, _signature(secret, sid))
    ):
        raise Forbidden("invalid session token", code="bad_session_token")
    return sid

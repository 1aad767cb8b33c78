"""Zoom's REST API, as far as the registry needs it: the PIN of a cobrowse session, by Zoom's session id.

``GET {ZOOM_API_URL}/cobrowsesdk/sessions/{sessionId}`` answers the session's details with ``session_pin``
(facts §9.2). Three of Zoom's four cobrowse webhooks carry only Zoom's session id, so this lookup is what ties them
to a registry session (``correlation.py``).

Failure model: ``session_pin`` returns the PIN, ``None`` when Zoom does not know the session or gives it no PIN
(404, or an answer without one: retrying cannot help), and raises ``ZoomApiError`` for everything worth retrying
(connection refused, timeout, 401/403, 429, 5xx, an answer that is not JSON). It never retries itself and never
logs: the caller schedules retries and logs the error's ``reason`` and ``status`` only. The error chain is cut
(``from None``) because aiohttp's exceptions carry the request, Authorization header included.

Auth (unconfirmed, facts §12): Zoom's Video SDK REST calls carry a JWT (HS256, ``iss`` = API key, ``exp`` about a
minute ahead) signed with the API secret, as ``Authorization: Bearer``. If Zoom's cobrowse API wants something else
(an OAuth server-to-server token, say), ``_authorization`` is the one function to change.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import aiohttp
import jwt
from pydantic import SecretStr

from shared.errors import BadRequest
from shared.jsonbody import parse_json

from .beacons import normalise_pin

__all__ = ["ZoomApi", "ZoomApiError"]

TOKEN_LIFETIME_S = 60
MAX_ANSWER_BYTES = 256 * 1024


class ZoomApiError(Exception):
    """A lookup that may succeed later: ``reason`` names what failed, ``status`` is Zoom's HTTP status if any."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(f"zoom api: {reason}" + (f" ({status})" if status is not None else ""))


class ZoomApi:
    """One HTTP client per process (opened in the app's cleanup context, closed with ``aclose``)."""

    def __init__(self, base_url: str, api_key: str, api_secret: SecretStr, *, timeout_s: float) -> None:
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._secret = api_secret
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def aclose(self) -> None:
        await self._http.close()

    def _authorization(self) -> str:
        claims = {"iss": self._key, "exp": int(time.time()) + TOKEN_LIFETIME_S}
        return "Bearer " + jwt.encode(claims, self._secret.get_secret_value(), algorithm="HS256")

    async def session_pin(self, zoom_session_id: str) -> str | None:
        url = f"{self._base}/cobrowsesdk/sessions/{quote(zoom_session_id, safe='')}"
        try:
            async with self._http.get(url, headers={"Authorization": self._authorization()}) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise ZoomApiError("status", response.status)
                if (response.content_length or 0) > MAX_ANSWER_BYTES:
                    raise ZoomApiError("answer_too_large", response.status)
                body = parse_json(await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ZoomApiError(type(exc).__name__) from None
        except BadRequest:
            raise ZoomApiError("answer_not_json") from None
        return normalise_pin(body.get("session_pin")) if isinstance(body, dict) else None

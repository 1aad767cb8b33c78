"""Zoom Cobrowse JWTs: exactly ``app_key``, ``role_type``, ``user_id``, ``user_name``, ``iat``, ``exp`` (and
``enable_byop: 1`` when asked for), HS256 with the SDK secret."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum
from typing import Any
from urllib.parse import urlencode

import jwt

__all__ = ["RoleType", "TokenSigner", "desk_url"]


class RoleType(IntEnum):
    CUSTOMER = 1
    AGENT = 2


class TokenSigner:
    """Signs tokens with one SDK key and secret; the secret stays inside this object."""

    def __init__(self, sdk_key: str, sdk_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._sdk_key = sdk_key
        self._secret = sdk_secret.encode()
        self._clock = clock

    def __repr__(self) -> str:
        return "TokenSigner(secret=***)"

    def sign(
        self, role: RoleType, user_id: str, user_name: str, expires_in_s: int, *, byop: bool = False
    ) -> tuple[str, int]:
        """Return the token and its ``exp`` (epoch seconds)."""
        iat = int(self._clock())
        claims: dict[str, Any] = {
            "app_key": self._sdk_key,
            "role_type": int(role),
            "user_id": user_id,
            "user_name": user_name,
            "iat": iat,
            "exp": iat + expires_in_s,
        }
        if byop:
            claims["enable_byop"] = 1
        return jwt.encode(claims, self._secret, algorithm="HS256"), claims["exp"]


def desk_url(zoom_host: str, access_token: str) -> str:
    """Zoom's hosted agent desk for ``access_token`` (facts §8)."""
    return f"https://{zoom_host}/sdkapi/zcb/frame-templates/desk?{urlencode({'access_token': access_token})}"

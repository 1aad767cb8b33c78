from __future__ import annotations

import pytest

from shared.errors import Forbidden
from shared.session_tokens import sign_session_token, verify_session_token

SECRET = b"s" * 32


def test_token_round_trip_and_scope() -> None:
    token = sign_session_token(SECRET, "abc123")
    assert verify_session_token(SECRET, token) == "abc123"
    assert verify_session_token(SECRET, token, "abc123") == "abc123"
    with pytest.raises(Forbidden):
        verify_session_token(SECRET, token, "other")


@pytest.mark.parametrize("token", [None, "", "v1.abc123.", "v2.abc123.x", "garbage", "v1..sig"])
def test_malformed_tokens_are_forbidden(token: str | None) -> None:
    with pytest.raises(Forbidden):
        verify_session_token(SECRET, token)


def test_token_signed_with_another_secret_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        verify_session_token(SECRET, sign_session_token(b"other", "abc123"))

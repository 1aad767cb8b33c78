from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@given(secret=st.binary(min_size=1, max_size=200), session_id=st.text(min_size=1, max_size=64))
def test_the_signature_is_hmac_sha256_of_the_session_id(secret: bytes, session_id: str) -> None:
    # Signatures are cached per secret and session id: they must stay the plain HMAC-SHA256 (keys longer than
    # SHA-256's block included, and the same answer from the cache), so tokens issued by another replica verify.
    digest = hmac.digest(secret, f"session:{session_id}".encode(), hashlib.sha256)
    signature = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert sign_session_token(secret, session_id) == f"v1.{session_id}.{signature}"
    assert sign_session_token(b"other" + secret, session_id) != f"v1.{session_id}.{signature}"
    for _ in range(2):  # computed, then from the cache
        assert verify_session_token(secret, f"v1.{session_id}.{signature}", session_id) == session_id

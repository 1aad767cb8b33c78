"""Request bodies of the HTTP API, validated strictly: no string-to-number coercion, no ``null`` for absent.

Field names are camelCase on the wire, as in Zoom's auth sample; every bad field is reported at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .settings import Settings

__all__ = ["AgentConnect", "CustomerStart", "TokenRequest", "token_request_model"]

PIN = r"^[A-Za-z0-9]{1,10}$"
QUEUE = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        # As in Zoom's sample, null is an error; a field left out gets its default.
        if value is None:
            raise ValueError("must not be null")
        return value


class TokenRequest(_Body):
    """``POST /`` body; lengths and expiry bounds come from settings (see ``token_request_model``)."""

    role: int
    expiration_s: int | None = Field(None, alias="expirationSeconds")
    user_id: str | None = Field(None, alias="userId")
    user_name: str | None = Field(None, alias="userName")
    enable_byop: bool = Field(False, alias="enableByop")
    pin: Annotated[str, Field(pattern=PIN)] | None = None
    """Role 2 only: the live session's PIN the agent token is for (required unless unbound tokens are allowed)."""

    @field_validator("role")
    @classmethod
    def _role(cls, value: int) -> int:
        if value not in (1, 2):
            raise ValueError("must be 1 (customer) or 2 (agent)")
        return value


def token_request_model(settings: Settings) -> type[TokenRequest]:
    """``TokenRequest`` with this deployment's expiry bounds and length limits."""

    class BoundedTokenRequest(TokenRequest):
        expiration_s: Annotated[int, Field(ge=settings.min_expiry_s, le=settings.max_expiry_s)] | None = Field(
            None, alias="expirationSeconds"
        )
        user_id: Annotated[str, Field(max_length=settings.user_id_max_length)] | None = Field(None, alias="userId")
        user_name: Annotated[str, Field(max_length=settings.user_name_max_length)] | None = Field(
            None, alias="userName"
        )

    return BoundedTokenRequest


class CustomerStart(_Body):
    """``POST /api/customer/start`` body."""

    queue: Annotated[str, Field(pattern=QUEUE)] = "support"
    priority: Annotated[int, Field(ge=0, le=9)] = 0
    user_name: Annotated[str, Field(max_length=80)] = Field("", alias="userName")
    custom_pin: Annotated[str, Field(pattern=PIN)] | None = Field(None, alias="customPin")


class AgentConnect(_Body):
    """``POST /api/agent/connect`` body."""

    pin: Annotated[str, Field(pattern=PIN)]

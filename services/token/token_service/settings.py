"""Token service settings: environment variables with the ``TOKEN_`` prefix, plus Zoom's own names (``ZOOM_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOKEN_", env_file=".env", extra="ignore", populate_by_name=True, frozen=True
    )

    # Zoom's auth sample names, so its ``.env`` works unchanged.
    zoom_sdk_key: SecretStr = Field(validation_alias="ZOOM_SDK_KEY", min_length=1)
    """SDK key of the Zoom app (the ``app_key`` claim)."""
    zoom_sdk_secret: SecretStr = Field(validation_alias="ZOOM_SDK_SECRET", min_length=1)
    """SDK secret that signs every token (HS256)."""
    zoom_simulated: bool = Field(False, validation_alias="ZOOM_SIMULATED")
    """Development credentials: pages use a simulated SDK and desk instead of Zoom's."""
    zoom_host: str = Field("us01-zcb.zoom.us", validation_alias="ZOOM_HOST", pattern=r"^[A-Za-z0-9.-]+(:\d+)?$")
    """Zoom Cobrowse host of the agent desk."""

    port: int = Field(8080, ge=0, le=65535)
    default_expiry_s: int = Field(7200, ge=1)
    """Token lifetime when the request names none."""
    agent_expiry_s: int = Field(1800, ge=1)
    """Lifetime of agent (role 2) tokens; a request may ask for less, never more (Zoom's minimum is 1800)."""
    allow_unbound_agent_tokens: bool = False
    """Migration only: ``POST /`` issues role-2 tokens without a ``pin``, as Zoom's sample does (logged loudly)."""
    min_expiry_s: int = Field(1800, ge=1)
    max_expiry_s: int = Field(172800, ge=1)
    user_id_max_length: int = Field(35, ge=1)
    """Longest ``userId`` accepted (Zoom's sample caps it at 35)."""
    user_name_max_length: int = Field(80, ge=1)
    """Longest ``userName`` accepted (Zoom's documented limit for ``user_name``)."""
    allow_byop: bool = True
    """Whether customer tokens may carry ``enable_byop: 1`` (Bring Your Own PIN) when a request asks for it."""

    rate_window_s: int = Field(60, ge=1)
    """Window of the token and start rate limits."""
    customer_tokens_per_window: int = Field(60, ge=1)
    """Customer (role 1) tokens per client IP per window."""
    agent_tokens_per_window: int = Field(60, ge=1)
    """Agent (role 2) tokens per account per window."""
    starts_per_window: int = Field(20, ge=1)
    """``/api/customer/start`` calls per client IP per window."""
    pin_failures_per_agent: int = Field(10, ge=1)
    """PIN lookups per account per PIN window, each reserved before it reaches the registry; a lookup that finds a
    live PIN gives its slot back, so in effect this caps wrong guesses (and lookups in flight)."""
    pin_failures_per_ip: int = Field(30, ge=1)
    """The same per client IP, across every account behind one address."""
    pin_window_s: int = Field(900, ge=1)
    trust_forwarded_for: bool = False
    """Removed: replaced by ``TRUSTED_PROXIES``; ``true`` stops start-up so nobody loses per-client limits unawares."""
    max_body_bytes: int = Field(16 * 1024, ge=256)
    registry_timeout_s: float = Field(2.0, gt=0)
    """How long to wait for the session registry over NATS."""

    @model_validator(mode="after")
    def _no_forwarded_for_switch(self) -> Settings:
        if self.trust_forwarded_for:
            raise ValueError("TOKEN_TRUST_FORWARDED_FOR is replaced by TRUSTED_PROXIES (CIDRs of your proxies)")
        return self

    @model_validator(mode="after")
    def _expiry_order(self) -> Settings:
        if not self.min_expiry_s <= self.default_expiry_s <= self.max_expiry_s:
            raise ValueError("TOKEN_MIN_EXPIRY_S <= TOKEN_DEFAULT_EXPIRY_S <= TOKEN_MAX_EXPIRY_S must hold")
        if not self.min_expiry_s <= self.agent_expiry_s <= self.max_expiry_s:
            raise ValueError("TOKEN_MIN_EXPIRY_S <= TOKEN_AGENT_EXPIRY_S <= TOKEN_MAX_EXPIRY_S must hold")
        return self

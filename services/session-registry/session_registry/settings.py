"""Settings of the session registry (``REGISTRY_`` prefix; the shared secrets have none)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

__all__ = ["Settings"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", env_file=".env", extra="ignore", frozen=True)

    port: int = Field(8081, ge=0, le=65535)
    session_token_secret: SecretStr = Field(validation_alias="SESSION_TOKEN_SECRET", min_length=16)
    """Signs beacon credentials; shared with the notification service, which verifies the same tokens."""
    zoom_webhook_secret_token: SecretStr | None = Field(None, validation_alias="ZOOM_WEBHOOK_SECRET_TOKEN")
    """Zoom webhook secret token; unset or empty, ``POST /webhooks/zoom`` answers 404."""
    webhook_tolerance_s: float = Field(300.0, gt=0)
    """Webhooks whose ``x-zm-request-timestamp`` is further than this from now are rejected as stale."""

    zoom_api_url: str = Field("https://api.zoom.us/v2", validation_alias="ZOOM_API_URL", pattern=r"^https?://\S+$")
    """Zoom's REST API, where a webhook's unknown Zoom session id is looked up (``GET /cobrowsesdk/sessions/{id}``)."""
    zoom_api_key: str | None = Field(None, validation_alias="ZOOM_API_KEY", max_length=256)
    zoom_api_secret: SecretStr | None = Field(None, validation_alias="ZOOM_API_SECRET")
    """With the key, signs the REST calls' short JWT; both unset (or empty), no lookup is made."""
    zoom_api_timeout_s: float = Field(2.0, gt=0)
    zoom_lookup_rate: int = Field(10, ge=1)
    """REST lookups per second, across every replica."""
    zoom_lookup_retry_base_s: float = Field(1.0, gt=0)
    """First pause after a failed lookup; doubled after each further failure."""
    zoom_lookup_retry_max_s: float = Field(60.0, gt=0)
    zoom_lookup_max_attempts: int = Field(15, ge=1)
    """Failed attempts after which a Zoom session's pending webhooks are dropped (logged ``webhook_uncorrelated``)."""
    zoom_lookup_poll_interval_s: float = Field(1.0, gt=0)
    """How soon a replica notices lookups due or queued by another replica (its own webhooks wake it at once)."""

    max_body_bytes: int = Field(65536, ge=1024)
    """Largest request body (beacons, webhooks); ``navigator.sendBeacon`` itself stops at 64 KiB."""
    max_batch_events: int = Field(100, ge=1)
    max_agents: int = Field(5, ge=1)
    """Agents per session (Zoom: 5)."""
    max_customers: int = Field(1, ge=1)
    """Customers per session (Zoom: 1)."""

    no_pin_timeout_s: float = Field(120.0, ge=0)
    """A session whose SDK reported no PIN this long after start ends (``no_pin_timeout``); 0 disables."""
    waiting_timeout_s: float = Field(900.0, ge=0)
    """A customer waiting this long with a PIN and no agent ends (``no_agent_timeout``)."""
    reconnect_window_s: float = Field(120.0, ge=0)
    """Away (unload, bfcache, SDK reconnecting, silence) with no agent this long: ended ``abandoned`` (Zoom: 2 min)."""
    agent_wait_timeout_s: float = Field(180.0, ge=0)
    """The same window while agents wait for the customer to come back (Zoom: 3 min; ``agent_wait_timeout``)."""
    heartbeat_timeout_s: float = Field(90.0, ge=0)
    """A live page silent this long is away (``reconnecting``, cause ``heartbeat_lost``); beacon.js beats every 15 s."""

    session_ttl_s: int = Field(86400, ge=60)
    """Lifetime of a live session's keys without any beacon (renewed at most once a minute while beacons arrive)."""
    ended_retention_s: int = Field(3600, ge=1)
    """How long an ended session stays in Redis; its history stays readable from JetStream after that."""
    history_limit: int = Field(100, ge=0)
    """Most recent history entries kept per live session (0: unbounded)."""
    ended_history_limit: int = Field(5, ge=0)
    """History entries an ended session keeps for the retention (0: not trimmed)."""
    dedupe_window: int = Field(64, ge=1, le=1000)
    """Runs of missing beacon seqs remembered: a late (out-of-order) event in one is applied once, a repeat never."""

    pin_miss_limit: int = Field(20, ge=1)
    """Failed PIN lookups in one bucket (within the window) after which its live PINs are retired."""
    pin_miss_window_s: int = Field(600, ge=1)
    pin_bucket_drop: int = Field(2, ge=0, le=9)
    """A PIN's miss bucket is the PIN without its last N characters (2: 100 neighbouring 6-digit PINs)."""

    partitions: int = Field(16, ge=1, le=256)
    """Partitions of the sessions (``REGISTRY_PARTITIONS``): each has its own slot, outbox, timers and publishing
    lease, so up to this many replicas publish in parallel. Fixed for a deployment: a session's keys are found by
    ``int(sid[:8], 16) % partitions``, so changing it on a live system loses every session (not supported)."""

    timer_poll_interval_s: float = Field(1.0, gt=0)
    timer_batch: int = Field(100, ge=1)
    outbox_batch: int = Field(128, ge=1, le=1000)
    """Events of one partition per publishing round; a round publishes every held partition's in one JetStream
    batch, at most 1,000 events (the server's atomic batch limit), so a partition's share may be smaller."""
    outbox_poll_interval_s: float = Field(0.2, gt=0)
    """Backstop: how soon the publishing replica notices writes whose wake-up was lost (a nudge during an outage)."""
    outbox_linger_s: float = Field(0.025, ge=0)
    """Under load, how long the publisher lets new events gather before it publishes them (larger batches)."""
    outbox_linger_min_rate: float = Field(1000.0, ge=0)
    """Linger only while the outbox runs at this many events/s or more: below it an event is published at once."""
    outbox_lease_s: float = Field(5.0, gt=0)
    """One replica at a time publishes a partition's outbox (keeps JetStream order); the partitions are spread over
    the live replicas, and a dead replica's are taken over within about twice this."""
    outbox_retry_max_s: float = Field(1.0, gt=0)
    """Longest pause between attempts while NATS is unavailable (a reconnect retries at once)."""
    publish_timeout_s: float = Field(2.0, gt=0)
    key_prefix: str = Field("reg:", pattern=r"^[A-Za-z0-9:_-]+$")

    @property
    def zoom_api_configured(self) -> bool:
        return bool(self.zoom_api_key) and self.zoom_api_secret is not None

    @field_validator("zoom_webhook_secret_token", "zoom_api_secret", "zoom_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker-compose passes an unset variable as "": that must switch webhooks off, not sign with an empty key.
        return None if value == "" else value

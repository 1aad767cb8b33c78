"""Settings of the notification service (``NOTIFY_`` prefix; shared values have none)."""

from __future__ import annotations

from datetime import UTC, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

from .desks import DeskMap

__all__ = ["Mode", "Overflow", "Settings"]


class Mode(StrEnum):
    OFFER = "offer"  # one agent at a time, with an acceptance timeout
    BROADCAST = "broadcast"  # every available agent; first claim wins


class Overflow(StrEnum):
    PRIORITY = "priority"  # raise the request's priority in its queue
    MOVE = "move"  # move the request to the overflow queue


def _zone(name: str) -> tzinfo:
    # UTC needs no time zone database (slim images may have none).
    return UTC if name == "UTC" else ZoneInfo(name)


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFY_")

    port: int = Field(8082, ge=0, le=65535)
    session_token_secret: SecretStr = Field(validation_alias="SESSION_TOKEN_SECRET")
    """Verifies customers' session tokens; the same secret as the registry's and the token service's."""
    default_queue: str = "support"
    desks: str = ""
    """Desks (``NOTIFY_DESKS``): groups of queues, each in one Redis Cluster slot, ``desk:queue,queue;desk:queue``,
    e.g. ``sales:sales,renewals;support:support,tech``. A queue not listed is in the desk ``default``."""
    default_mode: Mode = Mode.OFFER
    queue_modes: dict[str, Mode] = Field(default_factory=dict)
    """Per-queue distribution mode, JSON: ``{"vip": "broadcast"}``."""
    offer_timeout_s: float = Field(20.0, gt=0)
    """How long an agent has to accept an offer before it moves on (offer mode)."""
    max_wait_s: float = Field(120.0, gt=0)
    queue_max_wait_s: dict[str, float] = Field(default_factory=dict)
    """Per-queue maximum wait before escalation, JSON: ``{"vip": 30}``."""
    overflow_action: Overflow = Overflow.PRIORITY
    overflow_queue: str = "overflow"
    overflow_priority_boost: int = 10
    heartbeat_s: float = Field(15.0, gt=0)
    """WebSocket ping interval; a socket that misses its pong is closed (half-open detection)."""
    auth_timeout_s: float = Field(10.0, gt=0)
    """Time a new WebSocket has to send its ``auth`` frame."""
    presence_ttl_s: float = Field(30.0, gt=0)
    """Lifetime of an agent's presence key; the replica holding the socket refreshes it."""
    timer_poll_s: float = Field(0.5, gt=0)
    """Longest pause between looks at the shared timers (another replica's offers, escalations)."""
    timer_lease_s: float = Field(10.0, gt=0)
    """A fired timer is re-armed this far ahead until handled, so a replica dying mid-way loses nothing."""
    dashboard_buffer: int = Field(1000, ge=1)
    """Events buffered per dashboard client; a client further behind is dropped (it can resume)."""
    dashboard_keepalive_s: float = Field(15.0, gt=0)
    dashboard_snapshot_ttl_s: float = Field(1.0, ge=0)
    """Dashboards connecting within this time share one snapshot (what came after it is replayed)."""
    dashboard_drop_grace_s: float = Field(1.0, gt=0)
    """How long a dropped (slow) dashboard has to read the frame saying so before its connection is cut."""
    ticket_ttl_s: float = Field(30.0, gt=0)
    token_timeout_s: float = Field(2.0, gt=0)
    request_retention_s: int = Field(86400, gt=0)
    """How long Redis keeps a finished help request (for status polls and late events)."""
    consumer_name: str = "notification"
    """Durable JetStream consumer shared by all replicas."""
    consumer_concurrency: int = Field(64, ge=1)
    """Session events a replica handles at once."""
    stats_timezone: str = "UTC"
    """IANA time zone whose midnight starts the day of ``GET /stats``, e.g. ``Europe/Berlin``."""
    metrics_refresh_s: float = Field(5.0, gt=0)
    """How often the fleet-wide ``notify_queue_*`` gauges are read from Redis."""
    max_frame_bytes: int = Field(65536, ge=1024)
    # --- sockets and streams (notify-sockets) ---
    account_recheck_s: float = Field(15.0, gt=0)
    """Every open socket and stream re-checks its credential this often (backstop for ``accounts.revoked``)."""
    max_connections: int = Field(10000, ge=1)
    """Sockets and streams this process holds at once; past it new ones get 503 before the upgrade."""
    max_agent_sockets_per_account: int = Field(5, ge=1)
    """Agent sockets one account holds on this replica (one console is live; the rest are being replaced)."""
    max_dashboard_streams_per_account: int = Field(20, ge=1)
    """Dashboard WebSockets and SSE streams one supervisor account holds on this replica."""
    max_streams_per_credential: int = Field(10, ge=1)
    """SSE streams one credential (API key, ticket's account, customer session token) holds on this replica."""
    cap_retry_after_s: int = Field(5, ge=1)
    """``Retry-After`` sent with a 429/503 past a connection cap."""

    # notify-core: cancel's call to the registry, the outbox publisher
    registry_timeout_s: float = Field(2.0, gt=0)
    """How long a cancel waits for the registry to end the session (no answer: 503, nothing changed)."""
    outbox_poll_s: float = Field(0.5, gt=0)
    """Longest pause of the outbox publisher between looks (a local deferral wakes it at once)."""
    outbox_lease_s: float = Field(5.0, gt=0)
    """The publishing lease: one replica publishes the outbox; another takes over this long after it died."""

    _desk_map: DeskMap = PrivateAttr()

    @field_validator("desks")
    @classmethod
    def _valid_desks(cls, value: str) -> str:
        DeskMap.parse(value)  # a ValueError names what is wrong; load_settings names NOTIFY_DESKS
        return value

    def model_post_init(self, context: Any, /) -> None:
        self._desk_map = DeskMap.parse(self.desks)

    @property
    def desk_map(self) -> DeskMap:
        return self._desk_map

    @field_validator("stats_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            _zone(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def stats_zone(self) -> tzinfo:
        return _zone(self.stats_timezone)

    def mode(self, queue: str) -> Mode:
        return self.queue_modes.get(queue, self.default_mode)

    def max_wait(self, queue: str) -> float:
        return self.queue_max_wait_s.get(queue, self.max_wait_s)

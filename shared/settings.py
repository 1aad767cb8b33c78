"""Settings base shared by every service.

Every service has one ``Settings`` class that subclasses :class:`ServiceSettings`. Values come from the
environment (and an optional ``.env`` file); they are parsed once in ``__main__`` and passed to ``create_app``.
Shared values (``REDIS_URL``, ``NATS_URL``, ``LOG_*``, ``CORS_ORIGINS``) have no prefix; service values use the
service's ``env_prefix`` (``TOKEN_``, ``REGISTRY_``, ``NOTIFY_``).
"""

from __future__ import annotations

import sys
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ServiceSettings", "env_name", "load_settings", "redact_url"]

DEFAULT_CORS_ORIGINS = (
    "http://localhost:8080",
    "http://127.0.0.1:8080",
    "http://localhost:8081",
    "http://127.0.0.1:8081",
    "http://localhost:8082",
    "http://127.0.0.1:8082",
)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True, frozen=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    """Redis connection URL; may carry a password, which is redacted in logs. With ``REDIS_MODE=cluster``, seed
    URLs of several nodes, comma separated; with ``sentinel``, the sentinels' URLs (``redis://host:26379``)."""
    redis_mode: Literal["standalone", "cluster", "sentinel"] = Field("standalone", validation_alias="REDIS_MODE")
    """``standalone`` (one Redis, or one behind a proxy), ``cluster`` (Redis Cluster) or ``sentinel`` (a master
    found and followed through Redis Sentinel)."""
    redis_sentinel_master: str = Field("mymaster", validation_alias="REDIS_SENTINEL_MASTER")
    """With ``REDIS_MODE=sentinel``: the name the sentinels monitor the master under."""
    nats_url: str = Field("nats://127.0.0.1:4222", validation_alias="NATS_URL")
    """NATS server URL(s), comma separated."""
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL", pattern=r"(?i)^(debug|info|warning|error)$")
    log_json: bool | None = Field(None, validation_alias="LOG_JSON")
    """JSON log lines; default: JSON unless stderr is a terminal."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(DEFAULT_CORS_ORIGINS, validation_alias="CORS_ORIGINS")
    """Comma-separated browser origins allowed to call the HTTP APIs (``*`` allows any)."""
    public_token_url: str = Field("http://127.0.0.1:8080", validation_alias="PUBLIC_TOKEN_URL")
    """Where browsers reach the token service (pages and ``/api/config`` use it)."""
    public_registry_url: str = Field("http://127.0.0.1:8081", validation_alias="PUBLIC_REGISTRY_URL")
    """Where browsers reach the session registry (beacons)."""
    public_notify_url: str = Field("http://127.0.0.1:8082", validation_alias="PUBLIC_NOTIFY_URL")
    """Where browsers reach the notification service (queue position, agent console, dashboard)."""
    redis_pool_size: int = Field(64, ge=1, validation_alias="REDIS_POOL_SIZE")
    """Redis connections one process opens at most; callers past it wait for a free one."""
    redis_pool_timeout_s: float = Field(2.0, gt=0, validation_alias="REDIS_POOL_TIMEOUT_S")
    """How long a caller waits for a free Redis connection before its request answers 503."""
    redis_socket_timeout_s: float = Field(2.0, gt=0, validation_alias="REDIS_SOCKET_TIMEOUT_S")
    """Deadline of one Redis connect and of one reply; past it the command fails (a request answers 503)."""
    nats_pending_bytes: int = Field(2 * 1024 * 1024, ge=64 * 1024, validation_alias="NATS_PENDING_BYTES")
    """Bytes NATS buffers for sending while disconnected; past it a publish fails at once (503)."""
    nats_timeout_s: float = Field(2.0, gt=0, validation_alias="NATS_TIMEOUT_S")
    """Deadline of a NATS connect and of a flush."""
    nats_stream_replicas: int = Field(1, ge=1, le=5, validation_alias="NATS_STREAM_REPLICAS")
    """Replicas of the ``COBROWSE`` stream (3 on a NATS cluster); an existing stream's are never lowered."""
    nats_stream_max_bytes: int = Field(-1, ge=-1, validation_alias="NATS_STREAM_MAX_BYTES")
    """Size cap of the ``COBROWSE`` stream (-1: none; the oldest events go first); never lowered at start."""
    http_max_connections: int = Field(4096, ge=1, validation_alias="HTTP_MAX_CONNECTIONS")
    """Requests one process serves at once (each holds a connection; WebSockets and streams included); past it a
    request answers 503 with ``Retry-After`` before any work."""
    http_body_timeout_s: float = Field(10.0, gt=0, validation_alias="HTTP_BODY_TIMEOUT_S")
    """Time a client has to send its whole request body; past it the request answers 408 and the connection closes."""
    retry_after_s: int = Field(1, ge=1, validation_alias="RETRY_AFTER_S")
    """``Retry-After`` seconds of a 503 (dependency outage, pool exhausted, connection cap)."""
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    instance_id: str = ""
    """Name of this replica in logs and NATS client names; default: hostname and pid."""
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        (), validation_alias="TRUSTED_PROXIES"
    )
    """Comma-separated CIDRs (or addresses) of the reverse proxies in front of the service: the client IP is the
    right-most ``X-Forwarded-For`` hop not in this list, and only when the direct peer is in it. Empty: the peer."""

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(ip_network(part.strip(), strict=True) for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())
        return value


def redact_url(url: str) -> str:
    """Return ``url`` (or comma-separated URLs) with any password replaced by ``***``, for logs."""
    if "," in url:
        return ",".join(redact_url(part) for part in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


S = TypeVar("S", bound=ServiceSettings)


def env_name(settings_class: type[ServiceSettings], field: str) -> str:
    """The environment variable that sets ``field``: its alias, or the class's prefix plus its name."""
    info = settings_class.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"{settings_class.model_config.get('env_prefix', '')}{field}".upper()


def load_settings(settings_class: type[S], service: str) -> S:
    """Read ``settings_class`` from the environment, or exit 2 naming each bad setting (never its value).

    For ``__main__``: pydantic's own message would print the rejected value, which may be a secret.
    """
    try:
        return settings_class()
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            fields = settings_class.model_fields
            # pydantic reports an aliased field under its alias, others under the field name.
            name = env_name(settings_class, field) if field in fields else field.upper()
            problem = "is required" if error["type"] in ("missing", "too_short") else error["msg"]
            print(f"{service}: setting {name} {problem} (environment or .env)", file=sys.stderr)
        sys.exit(2)

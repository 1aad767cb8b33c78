"""The NATS contract between the services: subjects, streams and payload schemas (version 1).

Persisted events (JetStream stream ``COBROWSE``, subjects ``cobrowse.>``)::

    cobrowse.session.<session_id>.<type>   SessionEvent  published by session-registry on every state change
    cobrowse.queue.<queue>.<type>          QueueEvent    published by notification (queued, offered, claimed, ...)
    cobrowse.agent.<agent_id>.<type>       AgentEvent    published by notification (status, connected, ...)

Every persisted message carries its ``event_id`` as ``Nats-Msg-Id`` so a retried publish is stored once.

Request/reply (``nats.micro`` services; errors travel as ``Nats-Service-Error-Code`` = HTTP status and
``Nats-Service-Error`` = error code, body = ``{"error": {"code", "message"}}``)::

    registry.sessions.create     CreateSession   -> CreatedSession
    registry.sessions.get        SessionRef      -> SessionView
    registry.sessions.end        EndSession      -> SessionView     (staff end, or the notification service ending a
                                                                    cancelled request: reason "cancelled")
    registry.pins.resolve        ResolvePin      -> SessionView     (a live session that can take one more agent)
    token.agent.issue            IssueAgentToken -> AgentToken      (role-2 token for an account, for a live PIN)

Core NATS, not persisted::

    notify.agent.<agent_id>      bytes           a frame for an agent's socket, whichever replica holds it
    accounts.revoked             AccountRevoked  an account was disabled or its key rotated: every replica closes
                                                 that account's sockets and streams and withdraws its offers
    registry.outbox.written      b""             a registry replica wrote to its outbox: wakes the lease holder's
                                                 publisher on any replica at once (a hint; the poll stays as backstop)

Ordering: every ``SessionView`` carries ``version``, a per-session counter the registry increments with each
accepted change (in the same Lua step as the change). A consumer that keeps the last version it applied per
session ignores any event whose version is not newer, so events applied late or out of order never undo a newer one.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from enum import StrEnum
from typing import Any, Literal

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ACCOUNTS_REVOKED",
    "REGISTRY_CREATE_MANY",
    "REGISTRY_RESOLVE_MANY",
    "REGISTRY_OUTBOX_WRITTEN",
    "AccountRevoked",
    "AgentEvent",
    "AgentToken",
    "CreateSession",
    "CreatedSession",
    "EndSession",
    "IssueAgentToken",
    "QueueEvent",
    "ResolvePin",
    "RevocationReason",
    "SessionEvent",
    "SessionRef",
    "SessionState",
    "SessionView",
    "Source",
    "agent_inbox",
    "agent_subject",
    "ensure_streams",
    "new_event_id",
    "queue_subject",
    "session_subject",
]

# ---------------------------------------------------------------------------------------------- subjects

STREAM = "COBROWSE"
STREAM_SUBJECTS = ["cobrowse.>"]
SESSION_EVENTS = "cobrowse.session.>"
QUEUE_EVENTS = "cobrowse.queue.>"
AGENT_EVENTS = "cobrowse.agent.>"

REGISTRY_SERVICE = "session-registry"
REGISTRY_CREATE = "registry.sessions.create"
REGISTRY_CREATE_MANY = "registry.sessions.create_many"
REGISTRY_GET = "registry.sessions.get"
REGISTRY_END = "registry.sessions.end"
REGISTRY_RESOLVE_PIN = "registry.pins.resolve"
REGISTRY_RESOLVE_MANY = "registry.pins.resolve_many"

TOKEN_SERVICE = "token"
TOKEN_AGENT_ISSUE = "token.agent.issue"

ACCOUNTS_REVOKED = "accounts.revoked"
REGISTRY_OUTBOX_WRITTEN = "registry.outbox.written"

MSG_ID_HEADER = "Nats-Msg-Id"


def _token(value: str) -> str:
    # A subject token may not contain separators or wildcards; ids and queue names are validated upstream,
    # this is the last line of defence against subject injection.
    if not value or any(c in value for c in ".*> \t\r\n"):
        raise ValueError(f"invalid subject token: {value!r}")
    return value


def session_subject(session_id: str, event_type: str) -> str:
    return f"cobrowse.session.{_token(session_id)}.{_token(event_type)}"


def queue_subject(queue: str, event_type: str) -> str:
    return f"cobrowse.queue.{_token(queue)}.{_token(event_type)}"


def agent_subject(agent_id: str, event_type: str) -> str:
    return f"cobrowse.agent.{_token(agent_id)}.{_token(event_type)}"


def agent_inbox(agent_id: str) -> str:
    return f"notify.agent.{_token(agent_id)}"


def new_event_id() -> str:
    return uuid.uuid4().hex


def _at_least(existing: float | int | None, wanted: float | int) -> float | int:
    """The larger of two limits where ``-1`` or ``0``/``None`` mean unlimited (the larger of all)."""
    if existing is None or existing <= 0 or wanted <= 0:
        return -1 if isinstance(wanted, int) else 0.0
    return max(existing, wanted)


async def ensure_streams(
    js: JetStreamContext, *, replicas: int = 1, max_bytes: int = -1, max_age_s: float = 7 * 24 * 3600
) -> None:
    """Create the ``COBROWSE`` stream, or raise an existing one's settings to ours; safe from every replica at start.

    An existing stream's replicas and limits are never lowered: an operator who made it R3 or gave it more room keeps
    that, whatever a service's settings say (several versions of a service may start side by side).
    """
    config = StreamConfig(
        name=STREAM,
        subjects=STREAM_SUBJECTS,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age_s,
        max_bytes=max_bytes,
        num_replicas=replicas,
        duplicate_window=120.0,
        allow_atomic=True,  # the registry's outbox publishes in atomic batches; servers before 2.12 ignore it
    )
    try:
        current = (await js.stream_info(STREAM)).config
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except BadRequestError:  # another replica created it meanwhile
            current = (await js.stream_info(STREAM)).config
    merged = dataclasses.replace(
        current,
        subjects=sorted(set(current.subjects or []) | set(STREAM_SUBJECTS)),
        num_replicas=max(current.num_replicas or 1, replicas),
        max_bytes=int(_at_least(current.max_bytes, max_bytes)),
        max_age=float(_at_least(current.max_age, max_age_s)),
        duplicate_window=max(current.duplicate_window or 0.0, 120.0),
        allow_atomic=True,
    )
    if merged != current:
        await js.update_stream(merged)


# ---------------------------------------------------------------------------------------------- payloads


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


class SessionState(StrEnum):
    CREATED = "created"  # record exists, the SDK has not reported a PIN yet
    WAITING = "waiting"  # PIN known, waiting for an agent
    ACTIVE = "active"  # at least one agent joined
    RECONNECTING = "reconnecting"  # the customer page is gone or reconnecting; the reconnect window runs
    ENDED = "ended"  # final


class Source(StrEnum):
    BEACON = "beacon"
    WEBHOOK = "webhook"
    API = "api"
    TIMER = "timer"


class SessionView(Message):
    session_id: str
    state: SessionState
    pin: str | None = None
    queue: str = "support"
    priority: int = 0
    customer_name: str = ""
    agents: int = 0
    customers: int = 0
    created_at: float
    updated_at: float
    ended_reason: str | None = None
    pin_retired: bool = False  # too many failed lookups near this PIN: agents can no longer resolve it
    version: int = 0
    """Per-session change counter assigned by the registry: each accepted change is exactly one higher."""


class SessionEvent(Message):
    """One accepted state change of one session (``cobrowse.session.<id>.<type>``)."""

    v: Literal[1] = 1
    event_id: str
    type: str  # created, pin_assigned, agent_joined, agent_left, reconnecting, resumed, ended, error, ...
    source: Source
    at: float = Field(default_factory=time.time)
    prev_state: SessionState | None = None
    session: SessionView
    data: dict[str, Any] = Field(default_factory=dict)


class QueueEvent(Message):
    """A help request's life in a queue (``cobrowse.queue.<queue>.<type>``)."""

    v: Literal[1] = 1
    event_id: str
    # queued, offered, declined, offer_timeout, claimed, left (data.reason: cancelled|ended|joined),
    # escalated (data: action, to_queue, priority), no_agents / agents_available (session_id "", data.serving)
    type: str
    queue: str
    session_id: str
    at: float = Field(default_factory=time.time)
    agent_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class AgentEvent(Message):
    """An agent's presence (``cobrowse.agent.<agent_id>.<type>``)."""

    v: Literal[1] = 1
    event_id: str
    # connected (data.name), disconnected, status (data.capacity, or data.reason: offer_timeout),
    # released (data.session_id)
    type: str
    agent_id: str
    at: float = Field(default_factory=time.time)
    status: str | None = None
    queues: list[str] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)


class RevocationReason(StrEnum):
    DISABLED = "disabled"
    ROTATED = "rotated"


class AccountRevoked(Message):
    """``accounts.revoked``: whatever an account opened with its old key must close now."""

    account_id: str
    reason: RevocationReason


class CreateSession(Message):
    queue: str = "support"
    priority: int = 0
    customer_id: str
    customer_name: str = ""
    client_ip: str = ""
    custom_pin: str | None = None  # BYOP only
    idempotency_key: str | None = None
    """The client's ``Idempotency-Key`` (scoped by the token service): a retried create returns the same session."""


class CreatedSession(Message):
    session: SessionView
    beacon_token: str  # credential scoped to this session, for POST /beacons


class SessionRef(Message):
    session_id: str


class EndSession(Message):
    session_id: str
    reason: str = "ended_by_supervisor"
    by: str = ""  # account id


class ResolvePin(Message):
    pin: str
    agent_id: str
    client_ip: str = ""


class IssueAgentToken(Message):
    account_id: str
    pin: str
    client_ip: str = ""


class AgentToken(Message):
    token: str
    desk_url: str
    pin: str
    session_id: str
    expires_at: int

"""Sessions in Redis: the key scheme and the Lua scripts that change them atomically.

Keys (prefix ``REGISTRY_KEY_PREFIX``, default ``reg:``; built here and in ``lua/common.lua``)::

    reg:s:<sid>            hash   a session's facts (state, pin, counters, watermarks,   TTL: live / retention
                                  dedupe marks); once ended, its summary only
    reg:s:<sid>:h          list   its history, JSON entries (accepted and ignored)        same TTL
    reg:pin:<PIN>          str    session id owning a live PIN (or a reserved BYOP PIN)   session TTL
    reg:pinb:<bucket>      set    live PINs of a miss bucket                              session TTL; members leave
    reg:pinmiss:<bucket>   str    failed lookups in the bucket                            pin_miss_window_s
    reg:timers             zset   "<sid>|<kind>" scored by due time (ms)                  members leave when fired
    reg:index              zset   session ids by creation time (ms), for listings         pruned past TTL+retention
    reg:zoom:<zoom id>     str    our session id for Zoom's session id (webhooks)        session TTL
    reg:zpend, reg:zpq:…, reg:zpn:…, reg:zpin:…       webhooks waiting for a Zoom REST lookup (correlation.py)
    reg:idem:<key>         str    session id a create with this idempotency key made      session TTL
    reg:outbox             stream SessionEvents for JetStream (fields s=subject i=msg id d=json); entries leave when
                                  published
    reg:outbox:lease       str    the replica currently publishing the outbox            REGISTRY_OUTBOX_LEASE_S

Every change to a session is one script: the state transition, its history entry, its outbox entry and its timers
move together, so two replicas cannot lose an update and an accepted change is never lost.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel
from redis.asyncio import Redis

from shared.errors import Conflict, NotFound
from shared.messaging import CreateSession, SessionView
from shared.redis_conn import RedisClient

from .metrics import EVENT_OUTCOMES, TIMERS_FIRED
from .pipelining import ScriptPipeline
from .settings import Settings

__all__ = ["ApplyResult", "CreateResult", "Event", "ResolveResult", "SessionStore"]

Event = dict[str, Any]
"""A normalised event for ``apply.lua``: ``{id, name, ts, seq}`` plus ``pin``/``code``/``reason``/``original_name``."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What ``apply.lua`` did with a batch (a plain dataclass: it is built on every beacon)."""

    accepted: int
    duplicates: int
    ignored: int
    state: str

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict, which copies field by field recursively: ~7 µs of a beacon's ~200.
        return {"accepted": self.accepted, "duplicates": self.duplicates, "ignored": self.ignored, "state": self.state}


class CreateResult(BaseModel):
    """What ``create.lua`` answered: the session (``existing`` when an idempotency key named one) or an error."""

    session: SessionView | None = None
    existing: bool = False
    error: str | None = None


class ResolveResult(BaseModel):
    session: SessionView | None = None
    error: str | None = None
    misses: int = 0


def _script(name: str, settings: Settings) -> str:
    lua = Path(__file__).parent / "lua"
    return "\n".join([_constants(settings), (lua / "common.lua").read_text(), (lua / f"{name}.lua").read_text()])


def _constants(settings: Settings) -> str:
    """The Lua prelude's constants: key prefix ``P`` and configuration ``C``.

    They are part of the script (its SHA changes with them) rather than arguments of every call: a beacon's call
    then neither sends nor decodes them.
    """
    ms = 1000
    config = {
        "max_agents": settings.max_agents,
        "max_customers": settings.max_customers,
        "history_limit": settings.history_limit,
        "ended_history_limit": settings.ended_history_limit,
        "dedupe_window": settings.dedupe_window,
        "session_ttl_ms": settings.session_ttl_s * ms,
        "retention_ms": settings.ended_retention_s * ms,
        "no_pin_ms": int(settings.no_pin_timeout_s * ms),
        "waiting_ms": int(settings.waiting_timeout_s * ms),
        "reconnect_ms": int(settings.reconnect_window_s * ms),
        "agent_wait_ms": int(settings.agent_wait_timeout_s * ms),
        "heartbeat_ms": int(settings.heartbeat_timeout_s * ms),
        "pin_miss_limit": settings.pin_miss_limit,
        "pin_miss_window_ms": settings.pin_miss_window_s * ms,
        "pin_bucket_drop": settings.pin_bucket_drop,
    }
    table = ", ".join(f"{key} = {int(value)}" for key, value in config.items())
    # The prefix is letters, digits and ``:_-`` (settings), so it needs no escaping in a Lua string.
    return f"local P = '{settings.key_prefix}'\nlocal C = {{ {table} }}"


class SessionStore:
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        self.redis = redis
        self.prefix = settings.key_prefix
        self._ttl_ms = settings.session_ttl_s * 1000
        self.outbox_written = asyncio.Event()
        """Set whenever a script of this process may have added to the outbox; wakes the local publisher."""
        self._create = redis.register_script(_script("create", settings))
        self._apply = ScriptPipeline(cast(Redis, redis), _script("apply", settings))  # standalone only, for now
        self._fire = redis.register_script(_script("fire", settings))
        self._resolve = redis.register_script(_script("resolve", settings))
        self._views = redis.register_script(_script("views", settings))

    # keys, for the Python side (the scripts build the same ones)
    def session_key(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}"

    def history_key(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}:h"

    def pin_key(self, pin: str) -> str:
        return f"{self.prefix}pin:{pin}"

    def zoom_key(self, zoom_session_id: str) -> str:
        return f"{self.prefix}zoom:{zoom_session_id}"

    @property
    def outbox_key(self) -> str:
        return f"{self.prefix}outbox"

    @property
    def outbox_lease_key(self) -> str:
        return f"{self.prefix}outbox:lease"

    @property
    def index_key(self) -> str:
        return f"{self.prefix}index"

    async def create(self, request: CreateSession) -> SessionView:
        """Create a session, or return the one ``request.idempotency_key`` created."""
        session_id = uuid.uuid4().hex
        fields = {
            "queue": request.queue,
            "priority": request.priority,
            "customer_id": request.customer_id,
            "customer_name": request.customer_name,
            "client_ip": request.client_ip,
        }
        args = [session_id, json.dumps(fields), request.custom_pin or "", request.idempotency_key or ""]
        result = CreateResult.model_validate_json(await self._create(args=args))
        self.outbox_written.set()
        if result.session is None:
            raise Conflict("this PIN is in use by another live session", code="pin_taken")
        return result.session

    async def apply(self, session_id: str, source: str, events: list[Event]) -> ApplyResult:
        """Apply ``events`` to the session in one atomic step; ``NotFound`` if there is no such session."""
        raw = await self._apply([session_id, source, json.dumps(events)])
        self.outbox_written.set()
        reply = json.loads(raw)
        if "error" in reply:
            raise NotFound(f"no session {session_id}", code="session_not_found")
        result = ApplyResult(**reply)
        applied, ignored, duplicate = EVENT_OUTCOMES[source]
        applied.inc(result.accepted - result.ignored)
        if result.ignored:
            ignored.inc(result.ignored)
        if result.duplicates:
            duplicate.inc(result.duplicates)
        return result

    async def end(self, session_id: str, reason: str, by: str = "") -> SessionView:
        """End a session on behalf of staff (source ``api``); ending an ended session changes nothing."""
        event = {"id": uuid.uuid4().hex, "name": "session_ended", "ts": 0, "seq": 0, "reason": reason, "by": by}
        await self.apply(session_id, "api", [event])
        return await self.get(session_id)

    async def views(self, session_ids: list[str]) -> list[SessionView]:
        if not session_ids:
            return []
        raw = await self._views(args=session_ids)
        rows = json.loads(raw)
        # cjson encodes an empty table as an object
        return [SessionView.model_validate(row) for row in rows] if isinstance(rows, list) else []

    async def get(self, session_id: str) -> SessionView:
        found = await self.views([session_id])
        if not found:
            raise NotFound(f"no session {session_id}", code="session_not_found")
        return found[0]

    async def history(self, session_id: str) -> list[dict[str, Any]]:
        rows = cast(list[str], await self.redis.lrange(self.history_key(session_id), 0, -1))
        return [json.loads(row) for row in rows]

    async def list(
        self, *, state: str | None = None, queue: str | None = None, since: float = 0.0, limit: int = 100
    ) -> list[SessionView]:
        """Sessions created at or after ``since`` (epoch seconds), newest first, filtered by state and queue."""
        ids = cast(
            list[str],
            await self.redis.zrevrangebyscore(self.index_key, "+inf", int(since * 1000)),
        )
        found: list[SessionView] = []
        chunk = 200
        for start in range(0, len(ids), chunk):
            for view in await self.views(ids[start : start + chunk]):
                if (state is None or view.state == state) and (queue is None or view.queue == queue):
                    found.append(view)
                    if len(found) >= limit:
                        return found
        return found

    async def correlate_zoom(
        self, zoom_session_id: str | None, pin: str | None, user_session_id: str | None
    ) -> str | None:
        """Our session id for a Zoom webhook (see ``webhooks.py``), remembering Zoom's id for later webhooks."""
        session_id: str | None = None
        if zoom_session_id:
            session_id = cast(str | None, await self.redis.get(self.zoom_key(zoom_session_id)))
        if session_id is None and pin:
            session_id = cast(str | None, await self.redis.get(self.pin_key(pin)))
        if session_id is None and user_session_id and await self.redis.exists(self.session_key(user_session_id)):
            session_id = user_session_id
        if session_id is not None and zoom_session_id:
            await self.redis.set(self.zoom_key(zoom_session_id), session_id, px=self._ttl_ms)
        return session_id

    async def resolve(self, pin: str) -> ResolveResult:
        raw = await self._resolve(args=[pin])
        self.outbox_written.set()
        return ResolveResult.model_validate_json(raw)

    async def fire_due(self, batch: int) -> tuple[int, int]:
        """Fire due timers; returns (fired, looked at)."""
        fired, seen = await self._fire(args=[batch])
        if fired:
            TIMERS_FIRED.inc(fired)
            self.outbox_written.set()
        return int(fired), int(seen)

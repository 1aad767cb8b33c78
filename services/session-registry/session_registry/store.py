"""Sessions in Redis, partitioned by session: each change to a session is one script in its partition's slot.

Keys: ``keyspaces.py``. A session lives in partition ``int(sid[:8], 16) % REGISTRY_PARTITIONS`` (a fixed count:
changing it on a live system is not supported, since every session would be looked for in another slot). Its
state transition, history entry, outbox entry and timers move together in one script there, so two replicas
cannot lose an update and an accepted change is never lost. Each partition has its own outbox and timers.

What spans slots goes in steps, each atomic in its own slot, ordered so a crash between two is harmless:

- PINs (``pins.py``): claim in the PIN's bucket slot → the partition script adopts it or reports a conflict →
  release what it gave up. A crash leaves at most a PIN reserved until its TTL.
- Create with an idempotency key: ``idem_claim.lua`` claims the key for a new session id (or reads the id a
  concurrent or earlier create put there) → claim the custom PIN for that id → ``create.lua``, which creates the
  session only if it is not there yet. Concurrent starts with one key therefore name one session id and create it
  once; a crash after the key leaves an id the next retry creates.
- PIN lookup: the bucket step (owner, hot?) → the partition step (view, retire) → for a miss, the bucket step that
  counts it and, once the bucket is hot, lists its PINs → each retired in its partition.
- Zoom's session id → ours: ``reg:{zoom:<id>}:sid``, a plain key written once a webhook is correlated.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import json
import uuid
from typing import Any, cast

from shared.errors import Conflict, NotFound
from shared.jsonbody import dumps
from shared.messaging import CreateSession, SessionView
from shared.redis_conn import RedisClient
from shared.scripts import ScriptRunner

from .keyspaces import Keyspaces
from .metrics import EVENT_OUTCOMES, TIMERS_FIRED
from .pins import PinIndex
from .replies import (
    LUA,
    ApplyResult,
    CreateResult,
    FireResult,
    IdemClaimResult,
    PinRelease,
    ResolveResult,
    RetireResult,
    ViewsResult,
    load_script,
)
from .settings import Settings

__all__ = ["ApplyResult", "Event", "ResolveResult", "SessionStore"]

Event = dict[str, Any]
"""A normalised event for ``apply.lua``: ``{id, name, ts, seq}`` plus ``pin``/``code``/``reason``/``original_name``."""


def lua_constants(settings: Settings) -> dict[str, int | str]:
    """The scripts' constants ``C`` (durations in ms): part of each script (its SHA), never sent with a call."""
    ms = 1000
    return {
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
    }


class SessionStore:
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keyspaces.build(
            settings.key_prefix, partitions=settings.partitions, pin_bucket_drop=settings.pin_bucket_drop
        )
        self._bases = self.keys.bases()
        self._ttl_ms = settings.session_ttl_s * 1000
        self.outbox_written = asyncio.Event()
        """Set whenever a script of this process may have added to an outbox; wakes the local publisher."""
        self.written: set[int] = set()
        """The partitions written since the publisher last looked (a hint: which outboxes to publish or nudge)."""
        self.runner = ScriptRunner(redis)
        constants = lua_constants(settings)
        script = functools.partial(
            load_script,
            self.runner,
            keyspace=self.keys.partition,
            constants=constants,
            library=(LUA / "common.lua").read_text(),
        )
        self._create = script("create", CreateResult)
        self._apply = script("apply", ApplyResult)
        self._fire = script("fire", FireResult)
        self._resolve = script("resolve", ResolveResult)
        self._retire = script("retire", RetireResult)
        self._views = script("views", ViewsResult)
        self._idem_claim = load_script(
            self.runner, "idem_claim", IdemClaimResult, keyspace=self.keys.idem, constants=constants
        )
        self.pins = PinIndex(self.runner, self.keys, constants)

    def _wrote(self, partition: int) -> None:
        self.written.add(partition)
        self.outbox_written.set()

    async def create(self, request: CreateSession) -> SessionView:
        """Create a session, or return the one ``request.idempotency_key`` names (steps: see the module docstring)."""
        session_id = uuid.uuid4().hex
        if request.idempotency_key:
            session_id, fresh = await self._idempotency_claim(request.idempotency_key, session_id)
            if not fresh and (found := await self.views([session_id])):
                return found[0]
        custom = request.custom_pin or ""
        # Reserved until the SDK confirms it, so two customers cannot start with the same custom PIN.
        if custom and not (await self.pins.claim(session_id, {custom: (0, 0)}))[custom]:
            raise Conflict("this PIN is in use by another live session", code="pin_taken")
        fields = {
            "queue": request.queue,
            "priority": request.priority,
            "customer_id": request.customer_id,
            "customer_name": request.customer_name,
            "client_ip": request.client_ip,
        }
        partition = self.keys.partition_of(session_id)
        result = await self._create(self._bases[partition], session_id, dumps(fields), custom)
        self._wrote(partition)
        return result.session

    async def _idempotency_claim(self, key: str, session_id: str) -> tuple[str, bool]:
        """The session id ``key`` names: ``session_id`` if this call claimed the key (``True``), else the known one."""
        claim = await self._idem_claim(self.keys.idem.base(key), session_id)
        return claim.session_id, claim.fresh

    async def apply(self, session_id: str, source: str, events: list[Event]) -> ApplyResult:
        """Apply ``events`` to the session in one atomic step; ``NotFound`` if there is no such session."""
        stamps: dict[str, tuple[float, float]] = {}
        for event in events:
            if event["name"] == "pincode_updated":
                stamp, pin = (event["ts"], event["seq"]), event["pin"]
                stamps[pin] = max(stamp, stamps.get(pin, stamp))
        claims = dumps(await self.pins.claim(session_id, stamps)) if stamps else ""
        partition = self.keys.partition_of(session_id)
        result = await self._apply(self._bases[partition], session_id, source, dumps(events), claims)
        self._wrote(partition)
        if not result.state:
            if stamps:  # claimed for a session that is not there: give them back
                await self.pins.settle(_final(session_id, stamps))
            raise NotFound(f"no session {session_id}", code="session_not_found")
        if result.release or result.keep:
            await self.pins.settle(result.release, (session_id, result.keep) if result.keep else None)
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
        """The sessions found among ``session_ids``, in that order (one script per partition, concurrently)."""
        by_partition: dict[int, list[str]] = {}
        for session_id in session_ids:
            by_partition.setdefault(self.keys.partition_of(session_id), []).append(session_id)
        results = await asyncio.gather(*(self._views(self._bases[p], *ids) for p, ids in by_partition.items()))
        found = {view.session_id: view for result in results for view in result.sessions}
        return [found[session_id] for session_id in session_ids if session_id in found]

    async def get(self, session_id: str) -> SessionView:
        found = await self.views([session_id])
        if not found:
            raise NotFound(f"no session {session_id}", code="session_not_found")
        return found[0]

    async def history(self, session_id: str) -> list[dict[str, Any]]:
        rows = cast(list[str], await self.redis.lrange(self.keys.history(session_id), 0, -1))
        return [json.loads(row) for row in rows]

    async def list(
        self, *, state: str | None = None, queue: str | None = None, since: float = 0.0, limit: int = 100
    ) -> list[SessionView]:
        """Sessions created at or after ``since`` (epoch seconds), newest first, filtered by state and queue.

        Every partition's index is read and the lists merged by creation time.
        """
        indexes = await asyncio.gather(
            *(
                self.redis.zrevrangebyscore(
                    self.keys.partition.key(base, "index"), "+inf", int(since * 1000), withscores=True
                )
                for base in self._bases
            )
        )
        merged = heapq.merge(*cast(list[list[tuple[str, float]]], indexes), key=lambda item: -item[1])
        ids = [session_id for session_id, _ in merged]
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
            session_id = cast(str | None, await self.redis.get(self.keys.zoom_key(zoom_session_id)))
        if session_id is None and pin:
            session_id = await self.pins.owner(pin)
        if session_id is None and user_session_id and await self.redis.exists(self.keys.session(user_session_id)):
            session_id = user_session_id
        if session_id is not None and zoom_session_id:
            await self.remember_zoom(zoom_session_id, session_id)
        return session_id

    async def remember_zoom(self, zoom_session_id: str, session_id: str) -> None:
        await self.redis.set(self.keys.zoom_key(zoom_session_id), session_id, px=self._ttl_ms)

    async def resolve(self, pin: str) -> ResolveResult:
        """An agent's PIN lookup (steps: see the module docstring)."""
        found = await self.pins.lookup(pin)
        if found.session_id:
            partition = self.keys.partition_of(found.session_id)
            result = await self._resolve(self._bases[partition], pin, found.session_id, "1" if found.hot else "0")
            if result.retired:
                self._wrote(partition)
            if result.error != "gone":
                return result
        miss = await self.pins.miss(pin)
        if miss.owners:
            partitions = [self.keys.partition_of(owner.session_id) for owner in miss.owners]
            retired = await asyncio.gather(
                *(
                    self._retire(self._bases[p], owner.pin, owner.session_id)
                    for p, owner in zip(partitions, miss.owners, strict=True)
                )
            )
            for p, outcome in zip(partitions, retired, strict=True):
                if outcome.retired:
                    self._wrote(p)
        return ResolveResult(error="pin_not_found", misses=miss.misses)

    async def fire_due(self, batch: int) -> tuple[int, int]:
        """Fire due timers in every partition; returns (fired, most looked at in one partition)."""
        results = await asyncio.gather(*(self._fire(base, batch) for base in self._bases))
        fired = sum(result.fired for result in results)
        if fired:
            TIMERS_FIRED.inc(fired)
            for partition, result in enumerate(results):
                if result.fired:
                    self._wrote(partition)
            await self.pins.settle(release for result in results for release in result.release)
        return fired, max(result.looked_at for result in results)


def _final(session_id: str, stamps: dict[str, tuple[float, float]]) -> list[PinRelease]:
    return [PinRelease(session_id, pin, final=True) for pin in stamps]

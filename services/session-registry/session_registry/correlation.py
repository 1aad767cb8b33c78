"""Webhooks that name only Zoom's session id: kept in Redis, looked up in Zoom's REST API, then applied.

Zoom's ``session_started``, ``session_user_joined`` and ``session_user_left`` carry Zoom's ``session_id`` and no PIN.
A webhook whose Zoom id has no mapping yet is answered 200 at once (Zoom wants an answer within 3 s) after it is
stored here; a background loop on every replica then resolves the id (REST lookup → PIN → our session), saves the
mapping ``reg:{zoom:<id>}:sid`` and applies the stored events through ``apply.lua`` (the events keep their body-digest
ids, so a webhook Zoom delivered twice is applied once).

Keys (prefix ``REGISTRY_KEY_PREFIX``), all in one slot (webhooks waiting for a lookup are few)::

    reg:{zoomq}:pending        zset  Zoom session ids with stored webhooks, scored by the next attempt (ms)
    reg:{zoomq}:q:<zoom id>    list  their normalised events, JSON, oldest first (at most MAX_QUEUED)   max pending age
    reg:{zoomq}:n:<zoom id>    str   failed attempts so far                                              max pending age
    reg:{zoomq}:pin:<zoom id>  str   the PIN Zoom's REST API gave for the id (lookup cache)             session TTL

Failure model: nothing is decided in process. A replica claims due ids in one script (their score moves a lease
ahead), so two replicas rarely look one id up at once, and if they do, the apply dedupes. A failed lookup (Zoom
down, slow, 5xx, 429) or a PIN the registry does not know yet (the page's ``pincode_updated`` beacon may arrive after
Zoom's webhook) is retried with exponential backoff up to ``REGISTRY_ZOOM_LOOKUP_MAX_ATTEMPTS``; then the id's
webhooks are dropped and logged ``webhook_uncorrelated``. Lookups are rate limited across replicas (a limited one
waits for the next window without counting as a failure). Redis errors (and any bug) fail one id's
attempt, logged; its claim's lease brings it back; the loop goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self, cast

import structlog
from aiohttp import web
from pydantic import SecretStr
from redis.exceptions import RedisError

from shared.errors import NotFound, RateLimited
from shared.keys import REDIS
from shared.ratelimit import RateLimit
from shared.redis_conn import RedisClient
from shared.tasks import raise_if_cancelled, supervised, wait_event

from .keys import CORRELATOR, SETTINGS, STORE
from .settings import Settings
from .store import Event, SessionStore
from .zoomapi import ZoomApi, ZoomApiError

__all__ = ["Correlator", "correlation_context"]

log = structlog.get_logger()

MAX_QUEUED = 100
"""Webhooks kept per unresolved Zoom session id (a session has a handful; more is a flood)."""
BATCH = 20
LEASE_MS = 30_000

# Take the due ids and move each a lease ahead, so another replica's round skips them meanwhile.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', K_PENDING, '-inf', NOW, 'LIMIT', 0, C.batch)
for _, id in ipairs(due) do redis.call('ZADD', K_PENDING, NOW + C.lease_ms, id) end
return { due = due }
"""

# Keep a webhook's events until its Zoom id is resolved (an id in backoff keeps its schedule).
_HOLD = """
local queue = k_queue(ARGV[1])
for i = 2, #ARGV do redis.call('RPUSH', queue, ARGV[i]) end
redis.call('LTRIM', queue, -C.max_queued, -1)
redis.call('PEXPIRE', queue, C.max_age_ms)
redis.call('ZADD', K_PENDING, 'NX', 0, ARGV[1])
return { queued = redis.call('LLEN', queue) }
"""

# Drop the events applied (the first ARGV[2]; all of them for a drop, ARGV[2] = -1); an id whose queue grew
# meanwhile stays, due at once.
_DONE = """
local id, queue = ARGV[1], k_queue(ARGV[1])
local queued = redis.call('LLEN', queue)
if ARGV[2] == '-1' then redis.call('DEL', queue) else redis.call('LTRIM', queue, tonumber(ARGV[2]), -1) end
if redis.call('LLEN', queue) == 0 then
  redis.call('ZREM', K_PENDING, id)
  redis.call('DEL', k_attempts(id))
else
  redis.call('ZADD', K_PENDING, 0, id)
end
return { queued = queued }
"""


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """``_CLAIM``: the Zoom ids due now, each moved a lease ahead."""

    due: list[str]

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(raw["due"] if isinstance(raw["due"], list) else [])


@dataclass(frozen=True, slots=True)
class QueueResult:
    """``_HOLD`` and ``_DONE``: the id's webhooks queued (after a hold; before a done)."""

    queued: int

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(raw["queued"])


class Correlator:
    def __init__(self, redis: RedisClient, store: SessionStore, api: ZoomApi, settings: Settings) -> None:
        self._redis = redis
        self._store = store
        self._api = api
        self._settings = settings
        self._max_age_ms = int(settings.zoom_lookup_retry_max_s * settings.zoom_lookup_max_attempts * 1000) + 60_000
        self._ttl_ms = settings.session_ttl_s * 1000
        self._rate = RateLimit(store.runner, "zoomapi", limit=settings.zoom_lookup_rate, window_s=1)
        self._keys = store.keys.zoom_pending
        self._base = self._keys.base()
        constants = {"batch": BATCH, "lease_ms": LEASE_MS, "max_queued": MAX_QUEUED, "max_age_ms": self._max_age_ms}
        runner = store.runner
        self._claim = runner.script("zoom_claim", _CLAIM, ClaimResult, keyspace=self._keys, constants=constants)
        self._hold = runner.script("zoom_hold", _HOLD, QueueResult, keyspace=self._keys, constants=constants)
        self._done = runner.script("zoom_done", _DONE, QueueResult, keyspace=self._keys, constants=constants)
        self.wake = asyncio.Event()
        """Set when this replica stored a webhook: its loop runs at once instead of at the next poll."""

    @property
    def pending_key(self) -> str:
        return self._keys.key(self._base, "pending")

    def _queue_key(self, zoom_id: str) -> str:
        return self._keys.key(self._base, "queue", zoom_id)

    def _attempts_key(self, zoom_id: str) -> str:
        return self._keys.key(self._base, "attempts", zoom_id)

    def _pin_key(self, zoom_id: str) -> str:
        return self._keys.key(self._base, "pin", zoom_id)

    async def hold(self, zoom_id: str, events: list[Event]) -> None:
        """Keep a webhook's events until ``zoom_id`` is resolved (called before answering Zoom)."""
        await self._hold(self._base, zoom_id, *[json.dumps(event) for event in events])
        self.wake.set()

    async def run(self) -> None:
        interval = self._settings.zoom_lookup_poll_interval_s
        while True:
            raise_if_cancelled()
            self.wake.clear()
            try:
                due = (await self._claim(self._base)).due
                outcomes = await asyncio.gather(*[self._resolve(zoom_id) for zoom_id in due], return_exceptions=True)
                for zoom_id, outcome in zip(due, outcomes, strict=True):
                    if isinstance(outcome, asyncio.CancelledError):
                        raise outcome
                    if isinstance(outcome, RedisError):
                        log.warning("zoom_lookup_failed_redis", zoom_session_id=zoom_id, error=type(outcome).__name__)
                    elif isinstance(outcome, Exception):
                        # One id's bug must not stop the others; it comes back when its claim's lease ends.
                        log.error("zoom_lookup_crashed", zoom_session_id=zoom_id, error=type(outcome).__name__)
                if len(due) >= BATCH:
                    continue
            except RedisError as exc:
                log.warning("zoom_lookup_round_failed", error=type(exc).__name__)
            await wait_event(self.wake, interval)

    async def _resolve(self, zoom_id: str) -> None:
        session_id = cast(str | None, await self._redis.get(self._store.keys.zoom_key(zoom_id)))
        if session_id is None:
            pin = cast(str | None, await self._redis.get(self._pin_key(zoom_id)))
            if pin is None:
                try:
                    await self._rate.hit("lookups")
                except RateLimited as exc:
                    await self._redis.zadd(self.pending_key, {zoom_id: _ms_from_now(exc.retry_after)}, xx=True)
                    return
                try:
                    pin = await self._api.session_pin(zoom_id)
                except ZoomApiError as exc:
                    await self._retry(zoom_id, exc.reason, exc.status)
                    return
                if pin is None:
                    await self._drop(zoom_id, "unknown_to_zoom")
                    return
                await self._redis.set(self._pin_key(zoom_id), pin, px=self._ttl_ms)
            session_id = await self._store.pins.owner(pin)
            if session_id is None:
                # The page may not have reported its PIN yet, so this is worth another try.
                await self._retry(zoom_id, "pin_not_live", None)
                return
            await self._store.remember_zoom(zoom_id, session_id)
        queue = self._queue_key(zoom_id)
        events = [json.loads(raw) for raw in cast(list[str], await self._redis.lrange(queue, 0, -1))]
        if events:
            try:
                result = await self._store.apply(session_id, "webhook", events)
            except NotFound:
                await self._drop(zoom_id, "session_gone")
                return
            log.info(
                "webhooks_correlated",
                zoom_session_id=zoom_id,
                session_id=session_id,
                accepted=result.accepted,
                duplicates=result.duplicates,
            )
        await self._done(self._base, zoom_id, len(events))

    async def _retry(self, zoom_id: str, reason: str, status: int | None) -> None:
        attempts_key = self._attempts_key(zoom_id)
        attempts = int(await self._redis.incr(attempts_key))
        await self._redis.pexpire(attempts_key, self._max_age_ms)
        settings = self._settings
        if attempts >= settings.zoom_lookup_max_attempts:
            await self._drop(zoom_id, reason)
            return
        delay_s = min(settings.zoom_lookup_retry_max_s, settings.zoom_lookup_retry_base_s * 2 ** (attempts - 1))
        await self._redis.zadd(self.pending_key, {zoom_id: _ms_from_now(delay_s)}, xx=True)
        log.info(
            "zoom_lookup_failed",
            zoom_session_id=zoom_id,
            reason=reason,
            status=status,
            attempt=attempts,
            retry_in_s=delay_s,
        )

    async def _drop(self, zoom_id: str, reason: str) -> None:
        dropped = (await self._done(self._base, zoom_id, -1)).queued
        log.info("webhook_uncorrelated", zoom_session_id=zoom_id, reason=reason, webhooks=dropped)


def _ms_from_now(seconds: float) -> int:
    # The claim script compares with Redis time; replicas' clocks are close enough for a retry schedule.
    return int((time.time() + seconds) * 1000)


async def correlation_context(app: web.Application) -> AsyncIterator[None]:
    """The REST lookup loop, when ``ZOOM_API_KEY`` and ``ZOOM_API_SECRET`` are set; otherwise nothing."""
    settings = app[SETTINGS]
    if not settings.zoom_api_configured:
        yield
        return
    api = ZoomApi(
        settings.zoom_api_url,
        cast(str, settings.zoom_api_key),
        cast(SecretStr, settings.zoom_api_secret),
        timeout_s=settings.zoom_api_timeout_s,
    )
    correlator = Correlator(app[REDIS], app[STORE], api, settings)
    app[CORRELATOR] = correlator
    try:
        async with supervised(app, "registry-zoom-lookups", correlator.run):
            yield
    finally:
        await api.aclose()

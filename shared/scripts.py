"""Lua scripts, one way for the whole project: key shapes declared once, one slot per call, a typed reply.

A service declares each group of keys that must live in one slot as a :class:`Keyspace`::

    PARTITION = Keyspace("reg:", "p{}", session="s:{}", history="s:{}:h", timers="timers")
    base = PARTITION.base(3)                 # 'reg:{p3}': the hash tag decides the slot
    PARTITION.key(base, "session", sid)      # 'reg:{p3}:s:<sid>', for Python's own reads

and the Lua of a script gets the same shapes as functions of ``KEYS[1]``, the base of the call:
``k_session(sid)``, ``k_history(sid)`` and, for a shape without a placeholder, the constant ``K_TIMERS``. Every
key a call touches therefore carries its hash tag, so a cluster client routes the call by ``KEYS[1]`` and Redis
Cluster runs it on one node; on a single Redis the tag is just part of the name.

A :class:`Script` is the body of a Lua function. The loader puts a prelude in front of it: ``NOW`` (Redis's
clock, in milliseconds, the one time unit of every script), the service's constants ``C`` (integers; durations in
ms), ``cjson``-safe helpers of the service, and the key functions. The body's return value, a table, is answered
as one JSON object and decoded into the script's reply model, a class with a ``decode(dict)`` classmethod named
after the script (``ApplyResult`` for ``apply``): no reply is ever read by position.

Calls go through one :class:`ScriptRunner` per client, which shares round trips (``batching.py``): the calls made
while one round trip is in flight go together in the next one (a pipeline of ``EVALSHA``\\ s; on a cluster,
concurrent calls). Each call is still atomic and answered on its own; with one call at a time it costs nothing, the
first goes out at once. On a single Redis the runner keeps one connection of the client's pool for its round trips
(there is one in flight at a time).

Failure model: a connection or timeout error fails every call of its round trip with that error (the HTTP edge
answers 503, loops retry); a script error fails only its own call, as :class:`ScriptError`. A script Redis no
longer knows (``NOSCRIPT`` after a restart, a failover or ``SCRIPT FLUSH``) is loaded and its calls sent again.
"""

from __future__ import annotations

import asyncio
import math
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, Self, TypeVar, cast

import hiredis
import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .batching import Batcher
from .redis_conn import RedisClient

__all__ = ["Keyspace", "Reply", "Script", "ScriptError", "ScriptRunner", "lua_constants"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ScriptError(ResponseError):
    """A Lua script failed (a bug, or a key of another slot): a 500-class fault of ours, never bad input."""


class Reply(Protocol):
    """A script's reply model: built from the JSON object the script answered."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self: ...


R = TypeVar("R", bound=Reply)


class Keyspace:
    """Key shapes that share one hash tag, declared once for Python and Lua (see the module docstring).

    ``tag`` is a format string: ``"p{}"`` makes one slot per partition number, a tag without ``{}`` one slot.
    """

    def __init__(self, prefix: str, tag: str, **shapes: str) -> None:
        if not all(_NAME.match(name) for name in shapes):
            raise ValueError(f"key names must be Lua identifiers: {sorted(shapes)}")
        self.prefix = prefix
        self.tag = tag
        self.shapes = shapes

    def base(self, *tag_args: object) -> str:
        """The key every call of this keyspace passes as ``KEYS[1]``; its ``{...}`` decides the slot."""
        return f"{self.prefix}{{{self.tag.format(*tag_args)}}}"

    def key(self, base: str, name: str, *args: object) -> str:
        return f"{base}:{self.shapes[name].format(*args)}"

    def lua(self) -> str:
        """The shapes as Lua: ``k_<name>(...)`` for shapes with placeholders, ``K_<NAME>`` for the others."""
        lines = []
        for name, shape in self.shapes.items():
            parts = [(literal, field is not None) for literal, field, _, _ in string.Formatter().parse(shape)]
            params = [f"a{i}" for i in range(sum(has_field for _, has_field in parts))]
            pieces, i = ["KEYS[1]", repr(":")], 0
            for literal, has_field in parts:
                if literal:
                    pieces.append(repr(literal))
                if has_field:
                    pieces.append(params[i])
                    i += 1
            body = " .. ".join(pieces)
            if params:
                lines.append(f"local function k_{name}({', '.join(params)}) return {body} end")
            else:
                lines.append(f"local K_{name.upper()} = {body}")
        return "\n".join(lines)


def lua_constants(constants: Mapping[str, int | str]) -> str:
    """The table ``C`` of a prelude: integers, and strings of letters, digits and ``:_-.`` (no escaping needed)."""
    items = []
    for name, value in constants.items():
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"constant {name} must be an int or a str")
        if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9:_.\-]*", value):
            raise ValueError(f"constant {name} holds characters a Lua string would need escaped")
        items.append(f"{name} = {value!r}" if isinstance(value, str) else f"{name} = {value}")
    return "local C = { " + ", ".join(items) + " }"


_PRELUDE = """\
redis.replicate_commands()  -- TIME, then writes: replicate effects (the default since Redis 5)
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
"""


CLUSTER_IN_FLIGHT = 16
"""Most calls one runner has in flight on a cluster (a quarter of the default ``REDIS_POOL_SIZE`` per node)."""

Call = tuple["Script[Any]", str, Sequence[Any]]


class ScriptRunner:
    """Runs scripts on one client, sharing round trips among concurrent calls (see the module docstring)."""

    def __init__(self, redis: RedisClient, *, max_batch: int = 64) -> None:
        self.redis = redis
        # On a cluster a batch is that many concurrent calls, each holding a connection of its node's pool, and a
        # full cluster pool fails at once (redis-py has no blocking cluster pool): keep well under REDIS_POOL_SIZE.
        max_batch = min(max_batch, CLUSTER_IN_FLIGHT) if isinstance(redis, RedisCluster) else max_batch
        self._batcher: Batcher[Call, Any] = Batcher(self._execute, max_batch=max_batch)
        self._connection: AbstractConnection | None = None

    def script(
        self,
        name: str,
        body: str,
        reply: type[R],
        *,
        keyspace: Keyspace,
        constants: Mapping[str, int | str] = {},
        library: str = "",
    ) -> Script[R]:
        """A script from its ``body``, with ``library`` (the service's shared Lua) between prelude and body."""
        source = "\n".join(
            [
                _PRELUDE,
                lua_constants(constants),
                keyspace.lua(),
                library,
                "local function main()",
                body,
                "end",
                "return cjson.encode(main())",
            ]
        )
        return Script(self, name, self.redis.register_script(source), reply)

    async def run(self, script: Script[Any], base: str, args: Sequence[Any]) -> str:
        return cast(str, await self._batcher.submit((script, base, args)))

    async def _execute(self, batch: list[Call]) -> list[Any]:
        replies = await self._round_trip(batch)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Redis restarted, failed over or flushed its scripts: load them (on every master), run those again.
            for source in {batch[i][0].source for i in missing}:
                await self.redis.script_load(source)
            for i, reply in zip(missing, await self._round_trip([batch[i] for i in missing]), strict=True):
                replies[i] = reply
        return [
            ScriptError(f"script {batch[i][0].name}: {reply}")
            if isinstance(reply, ResponseError) and not isinstance(reply, NoScriptError)
            else reply
            for i, reply in enumerate(replies)
        ]

    async def _round_trip(self, batch: list[Call]) -> list[Any]:
        if isinstance(self.redis, RedisCluster):
            # redis-py's cluster pipeline refuses EVALSHA: the calls go concurrently instead, each routed by its
            # KEYS[1] and following MOVED and failovers on its own. A connection error is the error of the call.
            redis = self.redis
            return list(
                await asyncio.gather(
                    *(redis.evalsha(script.sha, 1, base, *args) for script, base, args in batch),
                    return_exceptions=True,
                )
            )
        return await self._standalone_round_trip(self.redis, batch)

    async def _standalone_round_trip(self, redis: Redis, batch: list[Call]) -> list[Any]:
        # One round trip, retried on a broken connection like redis-py's own pipeline, but without its per-command
        # bookkeeping, which costs more CPU than hiredis spends on the replies. The batcher has one round trip in
        # flight at a time, so the runner keeps one connection of the pool for all of them (taking it from the
        # pool and giving it back cost ~3 % of a beacon); closing the client closes it.
        if self._connection is None:
            self._connection = await redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        connection = self._connection
        try:
            return cast(
                list[Any],
                await connection.retry.call_with_retry(
                    lambda: _send_and_read(connection, batch), lambda _: connection.disconnect()
                ),
            )
        except BaseException:
            # Cancelled or failed mid-read: replies may still be on the wire, so the connection must reconnect.
            await connection.disconnect()
            raise


async def _send_and_read(connection: AbstractConnection, batch: list[Call]) -> list[Any]:
    # hiredis packs in C what redis-py's asyncio connection packs in Python (a tenth of a busy service's CPU).
    commands = b"".join(hiredis.pack_command(("EVALSHA", script.sha, 1, base, *args)) for script, base, args in batch)
    if not connection.is_connected:
        # What the pool does before it lends a connection: ``connect`` is where a sentinel-managed connection asks
        # the sentinels for the current master (``send_packed_command`` would reconnect to the last address).
        await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    await connection.send_packed_command(commands)
    replies: list[Any] = []
    try:
        # One deadline for all the replies, the connection's socket timeout (redis-py would arm one per reply).
        async with asyncio.timeout(connection.socket_timeout):
            for _ in batch:
                # Every reply is read, errors included, so that the connection goes back to the pool in step.
                try:
                    replies.append(await connection.read_response(timeout=math.inf))
                except ResponseError as exc:
                    replies.append(exc)
    except TimeoutError as exc:  # read_response has disconnected: the retry reconnects
        raise RedisTimeoutError("timeout reading the scripts' replies") from exc
    return replies


class Script(Generic[R]):
    """One registered script: ``await script(base, *args)`` runs it in ``base``'s slot and decodes its reply."""

    def __init__(self, runner: ScriptRunner, name: str, registered: AsyncScript, reply: type[R]) -> None:
        self.name = name
        self.sha = registered.sha
        self.source = registered.script
        self._runner = runner
        self._reply = reply

    async def __call__(self, base: str, *args: str | bytes | int | float) -> R:
        raw = await self._runner.run(self, base, args)
        return self._reply.decode(orjson.loads(raw))

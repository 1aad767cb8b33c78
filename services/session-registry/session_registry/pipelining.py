"""Implicit pipelining of one Lua script: the calls made while a round trip is in flight go out together.

redis-py spends far more CPU per command than Redis does; under load, sending the scripts of all concurrent
beacons in one pipeline divides that cost among them, with no added wait when the registry is idle (the first
call goes out at once). Each script still runs atomically on its own; only the round trip is shared.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["ScriptPipeline"]


class ScriptPipeline:
    def __init__(self, redis: Redis, source: str, *, max_batch: int = 64) -> None:
        self._redis = redis
        self._script = redis.register_script(source)
        self._max_batch = max_batch
        self._queue: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def __call__(self, args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((args, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                try:
                    results = await self._execute([args for args, _ in batch])
                except Exception as exc:  # the connection failed: every caller of this batch gets the error
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue  # its caller went away
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._sender = None

    async def _execute(self, calls: list[list[Any]]) -> list[Any]:
        results = await self._pipeline(calls)
        if any(isinstance(r, NoScriptError) for r in results):
            # Redis restarted or flushed its scripts: load once, then run again only the calls that did not run.
            await self._redis.script_load(self._script.script)
            retry = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            for i, result in zip(retry, await self._pipeline([calls[i] for i in retry]), strict=True):
                results[i] = result
        return results

    async def _pipeline(self, calls: list[list[Any]]) -> list[Any]:
        # One round trip on a pooled connection, retried on a broken connection like redis-py's own pipeline, but
        # without its per-command bookkeeping, which costs more CPU than hiredis spends on the replies.
        pool = self._redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        try:
            return cast(
                list[Any],
                await connection.retry.call_with_retry(
                    lambda: self._round_trip(connection, calls), lambda _: connection.disconnect()
                ),
            )
        except BaseException:
            # Cancelled or failed mid-read: replies may still be on the wire, so the connection must not be reused.
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)

    async def _round_trip(self, connection: AbstractConnection, calls: list[list[Any]]) -> list[Any]:
        sha = self._script.sha
        await connection.send_packed_command(connection.pack_commands([("EVALSHA", sha, 0, *args) for args in calls]))
        results: list[Any] = []
        try:
            # One deadline for all the replies, the connection's socket timeout (redis-py would arm one per reply).
            async with asyncio.timeout(connection.socket_timeout):
                for _ in calls:
                    # Every reply is read, errors included, so that the connection goes back to the pool in step.
                    try:
                        results.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as exc:
                        results.append(exc)
        except TimeoutError as exc:  # read_response has disconnected: the retry reconnects
            raise RedisTimeoutError("timeout reading the beacon scripts' replies") from exc
        return results

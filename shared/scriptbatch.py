"""Lua script calls that arrive together go to Redis together: one round trip for every call made while the
previous round trip was in flight.

Each call is still its own ``EVALSHA``, atomic on its own and answered on its own; batching only shares the round
trip and redis-py's per-call overhead (pool checkout, a socket write and read: tens of microseconds of Python) among
the calls of a burst. With one call at a time it costs nothing: the first call goes out at once.

Failure model: a connection or timeout error fails every call of its round trip with that error (the HTTP edge
answers 503); a script error fails only its own call. A script Redis no longer knows (``NOSCRIPT`` after a restart
or ``SCRIPT FLUSH``) is loaded and its call sent again by redis-py's ``Script``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from .redis_conn import RedisClient

__all__ = ["Coalescer", "ScriptBatch", "fail_all"]

T = TypeVar("T")
Call = tuple[AsyncScript, Sequence[str], Sequence[Any], asyncio.Future[Any]]


class Coalescer(Generic[T]):
    """Items queued while a send is in flight go out together, as one batch, in the next ``_send``."""

    def __init__(self) -> None:
        self._pending: list[T] = []
        self._sender: asyncio.Task[None] | None = None

    def _queue(self, item: T) -> None:
        self._pending.append(item)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_pending())

    async def _send_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._send(batch)
        finally:
            self._sender = None

    async def _send(self, batch: list[T]) -> None:
        """Send ``batch`` and settle every future in it; must not raise."""
        raise NotImplementedError


def fail_all(futures: Iterable[asyncio.Future[Any]], exc: BaseException) -> None:
    """Settle every pending future of a failed round trip with its error (the edge answers 503)."""
    for future in futures:
        if not future.done():
            future.set_exception(exc)


class ScriptBatch(Coalescer[Call]):
    """Runs registered scripts on ``redis``, sharing round trips among concurrent calls."""

    def __init__(self, redis: RedisClient) -> None:
        super().__init__()
        self.redis = redis

    def register(self, source: str) -> AsyncScript:
        return self.redis.register_script(source)

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The reply of ``script`` called with ``keys`` and ``args``."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue((script, keys, args, future))
        return await future

    async def _send(self, batch: list[Call]) -> None:
        try:
            if len(batch) == 1:
                script, keys, args, _ = batch[0]
                replies: list[Any] = [await script(keys=keys, args=args)]
            else:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for script, keys, args, _ in batch:
                        pipe.evalsha(script.sha, len(keys), *keys, *args)
                    replies = await pipe.execute(raise_on_error=False)
                for i, reply in enumerate(replies):
                    if isinstance(reply, NoScriptError):
                        replies[i] = await self._again(*batch[i][:3])
        except Exception as exc:  # a connection or timeout error: every call of the round trip shares it
            fail_all((call[3] for call in batch), exc)
            return
        for (*_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    @staticmethod
    async def _again(script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One call on its own, through ``Script`` (which loads the script first); a script error is its reply."""
        try:
            return await script(keys=keys, args=args)
        except ResponseError as exc:
            return exc

"""Sharing one round trip among concurrent calls: the one batching mechanism of the project.

A :class:`Batcher` sends the first call at once; the calls made while a batch is in flight wait and go together in
the next one (at most ``max_batch`` per batch). With one call at a time it costs nothing; under load a batch grows
with the load, so a burst pays one round trip per batch instead of one per call. On this project's machines a
round trip (a write to a socket and the peer's wake-up) costs more CPU than the work it carries, so this is where
throughput under a burst comes from: Redis scripts (``scripts.py``), rate-limit grants (``ratelimit.py``) and calls
of a ``*_many`` NATS endpoint (``rpc_many.py``) all go through it.

Failure model: ``send`` answers each item with its result or its own exception; an exception raised by ``send``
itself (a connection error, a timeout) fails every call of that batch with it. A caller that goes away (cancelled)
does not disturb the others: its item may still be sent and its answer is dropped. If the sending task itself is
cancelled (the service stopping), every call still waiting is cancelled too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")
R = TypeVar("R")

Send = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]
"""Sends a batch; answers one result or exception per item, in order."""


class Batcher(Generic[T, R]):
    def __init__(self, send: Send[T, R], *, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._send = send
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._sender: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing in flight."""
        return self._sender is None

    async def submit(self, item: T) -> R:
        """Send ``item`` in the next batch and return its answer (or raise its exception)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_pending())
        return await future

    async def _send_pending(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                answers: Sequence[R | BaseException]
                try:
                    answers = await self._send([item for item, _ in batch])
                except Exception as exc:  # the round trip failed: every call of the batch shares the error
                    answers = [exc] * len(batch)
                for (_, future), answer in zip(batch, answers, strict=True):
                    if future.done():
                        continue  # its caller went away
                    if isinstance(answer, BaseException):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
                batch = []
        finally:
            self._sender = None
            # Only a cancelled sender (the service stopping) leaves calls unanswered: they are cancelled too.
            for _, future in [*batch, *self._pending]:
                future.cancel()
            self._pending = []

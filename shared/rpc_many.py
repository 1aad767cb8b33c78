"""Many requests in one NATS request: concurrent calls of one endpoint share a round trip.

A call over NATS costs two deliveries, a write and a wake-up at each hop, and the handler's own Redis round trip;
under a burst those round trips, not the work they carry, are most of the CPU (``batching.py``). So a hot endpoint
(a customer start's create, an agent connect's PIN lookup) also has a ``*_many`` form: a :class:`ManyCaller` sends
the calls made while its last request was in flight as one :class:`Many` (at most ``MANY_MAX``), the server runs
them concurrently (their scripts share one Redis round trip) and answers an :class:`Outcome` for each.

Failure model: each call is answered on its own, a refused one as the same ``RemoteError`` (status, code, message)
the single endpoint would raise. When the request itself fails, every call of it does, as ``rpc.call`` fails:
``Unavailable`` when nothing answers, after one retry when there was no responder, and after a timeout only when
every call of the batch is ``idempotent`` (a retry must not do twice what the first attempt may have done).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, cast

from nats.aio.client import Client as NatsClient
from pydantic import BaseModel, Field
from structlog.contextvars import bound_contextvars

from .batching import Batcher
from .errors import CobrowseError, RemoteError
from .messaging import Message
from .rpc import call, error_reply

__all__ = ["MANY_MAX", "Item", "Many", "ManyCaller", "Outcome", "Outcomes", "RemoteFailure", "serve_many"]

MANY_MAX = 64
"""Most calls in one request."""

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)


class Item(Message, Generic[Req]):
    request: Req
    request_id: str | None = None
    """The HTTP request the call serves, for the server's logs."""


class Many(Message, Generic[Req]):
    items: list[Item[Req]] = Field(min_length=1, max_length=MANY_MAX)


class RemoteFailure(Message):
    """One call's error: what ``rpc.call`` raises as ``RemoteError`` for a single request."""

    status: int
    code: str
    message: str

    @classmethod
    def of(cls, error: CobrowseError) -> RemoteFailure:
        return cls(status=error.status, code=error.code, message=error.message)


class Outcome(Message, Generic[Rep]):
    """Exactly one of the two."""

    reply: Rep | None = None
    error: RemoteFailure | None = None


class Outcomes(Message, Generic[Rep]):
    outcomes: list[Outcome[Rep]]
    """One per item, in the order asked."""


def serve_many(handler: Callable[[Req], Awaitable[Rep]]) -> Callable[[Many[Req]], Awaitable[Outcomes[Rep]]]:
    """The ``*_many`` handler of ``handler`` (register it with ``Handlers.endpoint(Many[Req], ...)``)."""

    async def one(item: Item[Req]) -> Outcome[Rep]:
        with bound_contextvars(request_id=item.request_id or uuid.uuid4().hex):
            try:
                return Outcome(reply=await handler(item.request))
            except Exception as exc:
                return Outcome(error=RemoteFailure.of(error_reply(exc)))

    async def many(batch: Many[Req]) -> Outcomes[Rep]:
        # Together, so that their Redis calls share round trips; each succeeds or fails on its own.
        return Outcomes(outcomes=list(await asyncio.gather(*map(one, batch.items))))

    return many


def _never(_: Any) -> bool:
    return False


class ManyCaller(Generic[Req, Rep]):
    """Calls ``subject`` (a ``*_many`` endpoint) for one request at a time; concurrent calls share requests."""

    def __init__(
        self,
        nc: NatsClient,
        subject: str,
        reply_model: type[Rep],
        *,
        timeout_s: float,
        idempotent: Callable[[Req], bool] = _never,
    ) -> None:
        self._nc = nc
        self._subject = subject
        self._outcomes = cast(type[Outcomes[Rep]], Outcomes[reply_model])  # type: ignore[valid-type]
        self._timeout_s = timeout_s
        self._idempotent = idempotent
        self._batcher: Batcher[Item[Req], Rep] = Batcher(self._send, max_batch=MANY_MAX)

    async def call(self, request: Req, *, request_id: str | None = None) -> Rep:
        return await self._batcher.submit(Item(request=request, request_id=request_id))

    async def _send(self, items: list[Item[Req]]) -> list[Rep | BaseException]:
        reply = await call(
            self._nc,
            self._subject,
            Many(items=items),
            self._outcomes,
            timeout_s=self._timeout_s,
            idempotent=all(self._idempotent(item.request) for item in items),
        )
        if len(reply.outcomes) != len(items):
            raise CobrowseError(f"{self._subject} answered {len(reply.outcomes)} calls for {len(items)}")
        answers: list[Rep | BaseException] = []
        for outcome in reply.outcomes:
            if outcome.reply is not None:
                answers.append(outcome.reply)
            elif outcome.error is not None:
                answers.append(RemoteError(outcome.error.status, outcome.error.code, outcome.error.message))
            else:
                answers.append(CobrowseError(f"{self._subject} answered a call with neither a reply nor an error"))
        return answers

"""The client side of ``*_many`` endpoints (shared/rpc_many.py) against servers that time out or misbehave."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest

from shared.errors import CobrowseError, Unavailable
from shared.messaging import SessionRef, SessionState, SessionView
from shared.rpc_many import Many, ManyCaller, Outcome, Outcomes

VIEW = SessionView(session_id="s", state=SessionState.WAITING, created_at=1, updated_at=2)


def idempotent_unless_x(ref: SessionRef) -> bool:
    return not ref.session_id.startswith("x")


async def test_a_timed_out_request_is_retried_only_when_every_call_in_it_is_idempotent(
    nc: nats.aio.client.Client,
) -> None:
    """The first attempt of each request gets no answer (it may still have acted), the second does."""
    attempts: list[list[str]] = []

    async def silent_once(msg: nats.aio.msg.Msg) -> None:
        batch = Many[SessionRef].model_validate_json(msg.data)
        ids = [item.request.session_id for item in batch.items]
        attempts.append(ids)
        if attempts.count(ids) > 1:
            replies = [Outcome(reply=VIEW.model_copy(update={"session_id": i})) for i in ids]
            await msg.respond(Outcomes(outcomes=replies).encode())

    await nc.subscribe("many.flaky", cb=silent_once)
    caller: ManyCaller[SessionRef, SessionView] = ManyCaller(
        nc, "many.flaky", SessionView, timeout_s=0.3, idempotent=idempotent_unless_x
    )
    answered = await asyncio.gather(caller.call(SessionRef(session_id="a")), caller.call(SessionRef(session_id="b")))
    assert [v.session_id for v in answered] == ["a", "b"]
    assert attempts == [["a", "b"], ["a", "b"]]
    attempts.clear()
    mixed = await asyncio.gather(
        caller.call(SessionRef(session_id="c")), caller.call(SessionRef(session_id="x1")), return_exceptions=True
    )
    assert all(isinstance(r, Unavailable) for r in mixed)  # one call in it may not be repeated: none is
    assert attempts == [["c", "x1"]]


@pytest.mark.parametrize(
    ("outcomes", "answered"),
    [
        ([{"reply": VIEW.model_dump(mode="json")}], [False, False]),  # one answer for two calls: both fail
        ([{"reply": VIEW.model_dump(mode="json")}, {}], [True, False]),  # neither a reply nor an error: that one
    ],
)
async def test_a_server_that_answers_wrong_fails_the_calls_as_ours_not_with_a_crash(
    nc: nats.aio.client.Client, outcomes: list[dict[str, object]], answered: list[bool]
) -> None:
    async def wrong(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(json.dumps({"outcomes": outcomes}).encode())

    await nc.subscribe("many.wrong", cb=wrong)
    caller: ManyCaller[SessionRef, SessionView] = ManyCaller(nc, "many.wrong", SessionView, timeout_s=1)
    results = await asyncio.gather(
        caller.call(SessionRef(session_id="a")), caller.call(SessionRef(session_id="b")), return_exceptions=True
    )
    assert [isinstance(r, SessionView) for r in results] == answered
    assert all(isinstance(r, CobrowseError) and r.status == 500 for r in results if not isinstance(r, SessionView))

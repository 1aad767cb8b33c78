from __future__ import annotations

from typing import Any

import nats
import pytest
from nats.errors import NoRespondersError
from nats.micro import add_service

from shared.errors import Conflict, RemoteError, Unavailable
from shared.messaging import SessionRef, SessionState, SessionView
from shared.rpc import call, endpoint


async def test_typed_call_reply_and_error_translation(nc: nats.aio.client.Client) -> None:
    async def get(ref: SessionRef) -> SessionView:
        if ref.session_id == "taken":
            raise Conflict("already claimed", code="taken")
        if ref.session_id == "boom":
            raise RuntimeError("secret internals")
        return SessionView(session_id=ref.session_id, state=SessionState.WAITING, created_at=1, updated_at=2)

    service = await add_service(nc, name="test-svc", version="0.0.1")
    await service.add_endpoint(name="get", subject="test.get", handler=endpoint(SessionRef, get))

    view = await call(nc, "test.get", SessionRef(session_id="s1"), SessionView)
    assert view.state is SessionState.WAITING

    with pytest.raises(RemoteError) as exc_info:
        await call(nc, "test.get", SessionRef(session_id="taken"), SessionView)
    assert (exc_info.value.status, exc_info.value.code) == (409, "taken")

    with pytest.raises(RemoteError) as exc_info:
        await call(nc, "test.get", SessionRef(session_id="boom"), SessionView)
    assert exc_info.value.status == 500
    assert "secret internals" not in exc_info.value.message

    msg = await nc.request("test.get", b'{"nope": 1}', timeout=1)
    assert msg.headers is not None and msg.headers["Nats-Service-Error-Code"] == "400"
    await service.stop()


async def test_no_responder_is_unavailable(nc: nats.aio.client.Client) -> None:
    with pytest.raises(Unavailable):
        await call(nc, "nobody.home", SessionRef(session_id="x"), SessionView, timeout_s=0.5)


async def test_no_responders_is_retried_once(nc: nats.aio.client.Client) -> None:
    """A responder that appears after the first attempt found none (a cluster node came back) answers the retry."""

    async def get(ref: SessionRef) -> SessionView:
        return SessionView(session_id=ref.session_id, state=SessionState.WAITING, created_at=1, updated_at=2)

    request = nc.request
    attempts = 0

    async def first_finds_nobody(*args: Any, **kwargs: Any) -> Any:
        nonlocal attempts
        attempts += 1
        try:
            return await request(*args, **kwargs)
        except NoRespondersError:
            service = await add_service(nc, name="late-svc", version="0.0.1")
            await service.add_endpoint(name="get", subject="late.get", handler=endpoint(SessionRef, get))
            raise

    nc.request = first_finds_nobody  # type: ignore[method-assign]
    view = await call(nc, "late.get", SessionRef(session_id="s1"), SessionView, timeout_s=1)
    assert view.session_id == "s1" and attempts == 2


async def test_timeout_retried_only_when_idempotent(nc: nats.aio.client.Client) -> None:
    calls = 0

    async def slow_then_fast(msg: nats.aio.msg.Msg) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            view = SessionView(session_id="s1", state=SessionState.WAITING, created_at=1, updated_at=2)
            await msg.respond(view.encode())

    await nc.subscribe("flaky.get", cb=slow_then_fast)
    with pytest.raises(Unavailable):
        await call(nc, "flaky.get", SessionRef(session_id="s1"), SessionView, timeout_s=0.3)
    assert calls == 1
    calls = 0
    view = await call(nc, "flaky.get", SessionRef(session_id="s1"), SessionView, timeout_s=0.3, idempotent=True)
    assert view.session_id == "s1" and calls == 2

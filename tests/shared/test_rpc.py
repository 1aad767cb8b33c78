from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest
from nats.errors import NoRespondersError
from nats.micro import add_service
from structlog.testing import capture_logs

from shared.errors import Conflict, RemoteError, Unavailable
from shared.messaging import SessionRef, SessionState, SessionView
from shared.rpc import Handlers, call, endpoint


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


class FakeRequest:
    """What ``endpoint`` reads of a ``nats.micro`` request, and the answer it got."""

    def __init__(self, session_id: str) -> None:
        self.subject = "test.fake"
        self.headers = None
        self.data = SessionRef(session_id=session_id).encode()
        self.answer: bytes | None = None

    async def respond(self, data: bytes) -> None:
        self.answer = data


class FakeService:
    async def stop(self) -> None:
        pass


async def test_handlers_answer_a_request_while_another_is_held_up(nc: nats.aio.client.Client) -> None:
    release = asyncio.Event()

    async def get(ref: SessionRef) -> SessionView:
        if ref.session_id == "slow":
            await release.wait()
        return SessionView(session_id=ref.session_id, state=SessionState.WAITING, created_at=1, updated_at=2)

    handlers = Handlers(max_in_flight=8)
    service = await add_service(nc, name="test-handlers", version="0.0.1")
    await service.add_endpoint(name="get", subject="test.handlers", handler=handlers.endpoint(SessionRef, get))
    slow = asyncio.create_task(call(nc, "test.handlers", SessionRef(session_id="slow"), SessionView, timeout_s=5))
    # One message at a time (a plain subscription callback) would hold this one behind the slow one until it timed out.
    fast = await call(nc, "test.handlers", SessionRef(session_id="fast"), SessionView, timeout_s=5)
    assert fast.session_id == "fast" and not slow.done()
    release.set()
    assert (await slow).session_id == "slow"
    await handlers.stop(service)


async def test_handlers_keep_to_their_bound_and_stop_waits_for_the_requests_in_flight() -> None:
    release = asyncio.Event()
    started: asyncio.Queue[str] = asyncio.Queue()

    async def get(ref: SessionRef) -> SessionView:
        started.put_nowait(ref.session_id)
        await release.wait()
        return SessionView(session_id=ref.session_id, state=SessionState.WAITING, created_at=1, updated_at=2)

    handlers = Handlers(max_in_flight=2)
    handle = handlers.endpoint(SessionRef, get)
    requests = [FakeRequest(f"s{i}") for i in range(3)]
    spawns = [asyncio.create_task(handle(req)) for req in requests]  # type: ignore[arg-type]
    assert {await started.get(), await started.get()} == {"s0", "s1"}
    await asyncio.sleep(0)  # one loop turn: a free slot would have let the third one start by now
    assert started.empty() and not spawns[2].done()
    stopping = asyncio.create_task(handlers.stop(FakeService()))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # one loop turn: stop is now waiting for the two in flight
    assert not stopping.done()
    release.set()
    await asyncio.gather(stopping, *spawns)
    assert [req.answer is not None for req in requests[:2]] == [True, True]


async def test_an_answer_that_cannot_be_sent_is_logged_not_left_unretrieved() -> None:
    async def get(ref: SessionRef) -> SessionView:
        return SessionView(session_id=ref.session_id, state=SessionState.WAITING, created_at=1, updated_at=2)

    class GoneRequest(FakeRequest):
        async def respond(self, data: bytes) -> None:
            raise ConnectionError("nats is gone")

    handlers = Handlers(max_in_flight=1)
    with capture_logs() as logs:
        await handlers.endpoint(SessionRef, get)(GoneRequest("s1"))  # type: ignore[arg-type]
        await handlers.stop(FakeService())  # type: ignore[arg-type]
    assert [e["error"] for e in logs if e["event"] == "rpc_reply_failed"] == ["ConnectionError('nats is gone')"]

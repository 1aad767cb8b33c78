from __future__ import annotations

import nats
import pytest
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

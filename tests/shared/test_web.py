"""The HTTP edge every service shares: errors as JSON, request ids, CORS, health and readiness."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from nats.micro import add_service
from pydantic import BaseModel
from redis.asyncio import Redis

from devstack.servers import RedisCluster, start_nats, start_redis, start_redis_cluster
from shared.errors import Conflict, RemoteError
from shared.keys import JETSTREAM, NATS, REDIS
from shared.messaging import SessionRef, SessionView
from shared.nats_conn import nats_context
from shared.redis_conn import redis_context
from shared.rpc import call, endpoint
from shared.settings import ServiceSettings
from shared.tasks import supervised
from shared.web import error_response, read_json, setup_edge, static_file
from tests.conftest import LOG_LINES

ORIGIN = "http://allowed.example"


class Body(BaseModel):
    name: str
    count: int


def _settings(**overrides: object) -> ServiceSettings:
    return ServiceSettings(cors_origins=(ORIGIN,), **overrides)  # type: ignore[arg-type]


def _app(
    tmp_path: Path, redis_url: str | None = None, nats_url: str | None = None, **overrides: object
) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await read_json(request, Body)
        return web.json_response(body.model_dump())

    async def conflict(request: web.Request) -> web.Response:
        raise Conflict("already claimed", code="taken")

    async def bug(request: web.Request) -> web.Response:
        raise RuntimeError("internal detail cbk_must_not_leak")

    settings = _settings(**overrides, **({"redis_url": redis_url} if redis_url else {}))
    settings = settings.model_copy(update={"nats_url": nats_url} if nats_url else {})
    app = web.Application(client_max_size=1024)
    if redis_url:
        app.cleanup_ctx.append(redis_context(settings))
    if nats_url:
        app.cleanup_ctx.append(nats_context(settings, "test"))
    setup_edge(app, service="test", settings=settings)
    (tmp_path / "page.html").write_text("<h1>hi</h1>")
    app.router.add_post("/echo", echo)
    app.router.add_get("/conflict", conflict)
    app.router.add_get("/bug", bug)
    app.router.add_get("/page", static_file(tmp_path / "page.html"))
    app.router.add_get("/missing", static_file(tmp_path / "missing.html"))
    app.router.add_static("/static/", tmp_path)
    return app


async def test_errors_are_json_naming_the_problem(aiohttp_client, tmp_path: Path) -> None:
    client: TestClient = await aiohttp_client(_app(tmp_path))
    response = await client.post("/echo", json={"name": 5})
    assert response.status == 400
    body = await response.json()
    assert {e["property"] for e in body["errors"]} == {"name", "count"}
    assert body["error"]["code"] == "validation_failed"

    response = await client.post("/echo", data="{not json", headers={"Content-Type": "application/json"})
    assert (response.status, (await response.json())["error"]["code"]) == (400, "malformed_json")
    response = await client.post("/echo", data="x", headers={"Content-Type": "text/xml"})
    assert response.status == 415
    response = await client.post("/echo", data="x" * 2048, headers={"Content-Type": "application/json"})
    assert (response.status, (await response.json())["error"]["code"]) == (413, "payload_too_large")
    response = await client.get("/conflict")
    assert (response.status, (await response.json())["error"]["code"]) == (409, "taken")
    for path, status in (("/nowhere", 404), ("/missing", 404)):
        response = await client.get(path)
        assert response.status == status and "error" in await response.json()
    response = await client.get("/echo")
    assert response.status == 405 and "POST" in response.headers["Allow"]


async def test_a_bug_is_a_generic_500_logged_with_its_request_id(aiohttp_client, tmp_path: Path) -> None:
    client: TestClient = await aiohttp_client(_app(tmp_path))
    response = await client.get("/bug", headers={"X-Request-ID": "req-123"})
    assert response.status == 500
    assert await response.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert response.headers["X-Request-ID"] == "req-123"
    failure = [line for line in LOG_LINES if '"http_failed"' in line and "req-123" in line]
    assert failure and "RuntimeError" in failure[-1]
    # The exception's message is logged, but the log check at the end of the run would catch a `cbk_` in it:
    # drop this line so the deliberate test string does not count as a leak.
    LOG_LINES[:] = [line for line in LOG_LINES if "cbk_must_not_leak" not in line]


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
async def test_the_access_line_carries_the_request_and_follows_the_log_level(
    aiohttp_client, tmp_path: Path, level: str
) -> None:
    # The edge skips the call when its level is off (it cost ~2 % of a beacon even for a dropped line).
    client: TestClient = await aiohttp_client(_app(tmp_path, log_level=level))
    mark = len(LOG_LINES)
    response = await client.post("/echo", json={"name": "a", "count": 1}, headers={"X-Request-ID": "req-access"})
    assert response.status == 200
    lines = [json.loads(line) for line in LOG_LINES[mark:] if '"http_request"' in line]
    if level == "WARNING":
        assert lines == []
        return
    [line] = lines
    assert (line["request_id"], line["method"], line["path"], line["status"]) == ("req-access", "POST", "/echo", 200)
    assert line["duration_ms"] >= 0


async def test_cors_allows_only_configured_origins(aiohttp_client, tmp_path: Path) -> None:
    client: TestClient = await aiohttp_client(_app(tmp_path))
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-a"}
    response = await client.options("/echo", headers=preflight)
    assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == ORIGIN
    response = await client.options("/echo", headers={**preflight, "Origin": "http://evil.example"})
    assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
    response = await client.post("/echo", json={}, headers={"Origin": ORIGIN})
    assert response.status == 400 and response.headers["Access-Control-Allow-Origin"] == ORIGIN
    response = await client.get("/page", headers={"Origin": "http://evil.example"})
    assert response.status == 200 and "Access-Control-Allow-Origin" not in response.headers
    assert response.headers["Cache-Control"] == "no-cache" and await response.text() == "<h1>hi</h1>"


async def test_readiness_names_what_is_down(aiohttp_client, tmp_path: Path) -> None:
    redis = start_redis(tmp_path / "redis")
    nats = start_nats(tmp_path / "nats")
    try:
        client: TestClient = await aiohttp_client(_app(tmp_path, redis.url, nats.url))
        assert (await client.get("/readyz")).status == 200
        redis.stop()
        response = await client.get("/readyz")
        assert (response.status, await response.json()) == (503, {"status": "unavailable", "down": ["redis"]})
        nats.stop()
        response = await client.get("/readyz")
        assert (await response.json())["down"] == ["redis", "nats"]
        assert (await client.get("/healthz")).status == 200
        metrics = await (await client.get("/metrics")).text()
        assert 'http_requests_total{route="/readyz",service="test",status="503"}' in metrics
    finally:
        redis.stop()
        nats.stop()


def _redis_app(redis_url: str, tmp_path: Path, nats_url: str | None = None, **overrides: object) -> web.Application:
    app = _app(tmp_path, redis_url, nats_url, **overrides)

    async def get(request: web.Request) -> web.Response:
        return web.json_response({"value": await request.app[REDIS].get("k")})

    app.router.add_get("/get", get)
    return app


async def test_a_burst_past_the_redis_pool_waits_for_a_connection(aiohttp_client, tmp_path) -> None:
    # A server of its own: the count of its clients must not include connections other tests are still closing.
    redis = start_redis(tmp_path / "redis")
    try:
        app = _redis_app(redis.url, tmp_path, redis_pool_size=4, redis_pool_timeout_s=10, redis_socket_timeout_s=10)
        client: TestClient = await aiohttp_client(app)
        responses = await asyncio.gather(*(client.get("/get") for _ in range(300)))
        assert {r.status for r in responses} == {200}
        other = Redis.from_url(redis.url)
        assert len(await other.client_list()) - 1 <= 4  # the app's connections, not counting this one
        await other.aclose()
    finally:
        redis.stop()


async def test_no_free_redis_connection_in_time_is_a_503_with_retry_after(aiohttp_client, redis_url, tmp_path) -> None:
    app = _redis_app(redis_url, tmp_path, redis_pool_size=1, redis_pool_timeout_s=0.2)
    client: TestClient = await aiohttp_client(app)
    pool = app[REDIS].connection_pool
    held = await pool.get_connection()  # type: ignore[no-untyped-call]
    response = await client.get("/get")
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    assert (await response.json())["error"]["code"] == "unavailable"
    await pool.release(held)
    assert (await client.get("/get")).status == 200


async def test_past_the_connection_cap_a_request_is_a_503_before_any_work(aiohttp_client, tmp_path) -> None:
    both_in, release = asyncio.Event(), asyncio.Event()
    app = _app(tmp_path, http_max_connections=2)
    entered = []

    async def slow(request: web.Request) -> web.Response:
        entered.append(request)
        if len(entered) == 2:
            both_in.set()
        await release.wait()
        return web.json_response({})

    app.router.add_get("/slow", slow)
    client: TestClient = await aiohttp_client(app)
    first, second = asyncio.ensure_future(client.get("/slow")), asyncio.ensure_future(client.get("/slow"))
    await asyncio.wait_for(both_in.wait(), 5)
    third = await client.get("/conflict")
    assert (third.status, third.headers["Retry-After"]) == (503, "1")
    assert (await third.json())["error"]["code"] == "overloaded"
    assert (await client.get("/healthz")).status == 200  # probes are never turned away
    release.set()
    assert [(await first).status, (await second).status] == [200, 200]
    assert (await client.get("/conflict")).status == 409


async def test_a_body_that_does_not_arrive_in_time_is_a_408_and_the_connection_closes(aiohttp_client, tmp_path) -> None:
    client: TestClient = await aiohttp_client(_app(tmp_path, http_body_timeout_s=0.3))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    async with asyncio.timeout(5):
        answer = await reader.read()  # until the server closes
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"]["code"] == "request_timeout"


def _outage_app(tmp_path: Path, redis_url: str, nats_url: str) -> web.Application:
    app = _redis_app(redis_url, tmp_path, nats_url, redis_socket_timeout_s=0.5, nats_timeout_s=0.5)

    async def ask(request: web.Request) -> web.Response:
        await request.app[NATS].request("nobody.listens", b"", timeout=0.3)
        return web.json_response({})

    async def publish(request: web.Request) -> web.Response:
        await request.app[JETSTREAM].publish("test.outage", b"x", timeout=0.3)  # waits for the stream's ack
        return web.json_response({})

    app.router.add_get("/ask", ask)
    app.router.add_get("/publish", publish)
    return app


async def _assert_unavailable(response: ClientResponse) -> None:
    assert (response.status, response.headers.get("Retry-After")) == (503, "1"), await response.text()
    assert (await response.json())["error"]["code"] == "unavailable"


async def test_an_outage_of_redis_or_nats_is_a_503_with_retry_after_then_recovers(aiohttp_client, tmp_path) -> None:
    redis = start_redis(tmp_path / "redis")
    nats = start_nats(tmp_path / "nats")
    try:
        client: TestClient = await aiohttp_client(_outage_app(tmp_path, redis.url, nats.url))
        await client.app[JETSTREAM].add_stream(name="OUTAGE", subjects=["test.outage"])
        assert (await client.get("/get")).status == 200
        assert (await client.get("/publish")).status == 200
        await _assert_unavailable(await client.get("/ask"))  # no responders: NATS up, nobody serves the subject
        redis.stop()
        mark = len(LOG_LINES)
        await _assert_unavailable(await client.get("/get"))
        outage = [json.loads(line) for line in LOG_LINES[mark:] if '"http_unavailable"' in line]
        assert outage and outage[0]["level"] == "warning" and outage[0]["dependency"] == "redis"
        assert "exception" not in outage[0]  # an expected failure: no traceback
        redis = start_redis(tmp_path / "redis-again", port=redis.port)
        assert (await client.get("/get")).status == 200  # the same client, no restart
        nats.stop()
        await _assert_unavailable(await client.get("/publish"))
        nats = start_nats(tmp_path / "nats", port=nats.port)  # same store: the stream is back
        async with asyncio.timeout(10):  # each try waits out its flush timeout while the client reconnects
            while (await client.get("/publish")).status != 200:
                pass
    finally:
        redis.stop()
        nats.stop()


async def test_an_outage_inside_a_nats_service_is_relayed_as_a_503(nc) -> None:
    """A responder whose Redis is down answers 503 (not a bug's 500); the caller's edge relays it with Retry-After."""
    broken = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1

    async def get(ref: SessionRef) -> SessionView:
        await broken.get(ref.session_id)
        raise AssertionError("unreachable")

    service = await add_service(nc, name="test-outage", version="0.0.1")
    await service.add_endpoint(name="get", subject="test.outage.get", handler=endpoint(SessionRef, get))
    try:
        with pytest.raises(RemoteError) as raised:
            await call(nc, "test.outage.get", SessionRef(session_id="s1"), SessionView)
        assert (raised.value.status, raised.value.code) == (503, "unavailable")
        assert error_response(raised.value).headers["Retry-After"] == "1"
    finally:
        await service.stop()
        await broken.aclose()


async def _raw(client: TestClient, data: bytes) -> tuple[int, dict[str, str], Any]:
    """Send raw bytes; the status, headers and JSON body of the answer (read until the server closes)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(data)
    await writer.drain()
    async with asyncio.timeout(5):
        answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, json.loads(body)


KEY = "cbk_" + "k" * 32


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request_line"),
        (b"GET /" + KEY.encode() + b"\x00 HTTP/1.1\r\nHost: x\r\n\r\n", "invalid_url"),
        (f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\x01\r\n\r\n".encode(), "bad_http_message"),
        (f"GET / HTTP/1.1\r\nHost: x\r\nX-Key: {KEY}{'k' * 9000}\r\n\r\n".encode(), "line_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "bad_http_message"),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad_http_message"),
    ],
)
async def test_what_the_http_parser_rejects_is_our_json_error_echoing_nothing(
    aiohttp_client, tmp_path, request_bytes: bytes, code: str
) -> None:
    client: TestClient = await aiohttp_client(_app(tmp_path))
    mark = len(LOG_LINES)
    status, headers, body = await _raw(client, request_bytes)
    assert (status, headers["Content-Type"].split(";")[0], body["error"]["code"]) == (400, "application/json", code)
    assert KEY not in json.dumps(body)
    logged = LOG_LINES[mark:]
    assert not any(KEY in line for line in logged)
    assert all('"level": "error"' not in line for line in logged)


async def test_a_garbled_compressed_body_is_a_400(aiohttp_client, tmp_path) -> None:
    client: TestClient = await aiohttp_client(_app(tmp_path))
    mark = len(LOG_LINES)
    for encoding in ("gzip", "deflate", "br"):
        response = await client.post(
            "/echo",
            data=b"\x1f\x8b\x08\x00garbage" + KEY.encode(),
            headers={"Content-Type": "application/json", "Content-Encoding": encoding},
        )
        assert response.status in (400, 415) and (await response.json())["error"]["code"], encoding
        assert KEY not in await response.text()
    assert not [line for line in LOG_LINES[mark:] if '"level": "error"' in line]


async def test_hostile_json_bodies_are_400s(aiohttp_client, tmp_path) -> None:
    client: TestClient = await aiohttp_client(_app(tmp_path, http_max_connections=10))
    app_json = {"Content-Type": "application/json"}
    for raw in ("[" * 500 + "]" * 500, '{"name": "a", "count": Infinity}', '{"name": "a", "count": 1e400}', "\xff"):
        response = await client.post("/echo", data=raw.encode("utf-8", "surrogateescape"), headers=app_json)
        assert response.status == 400 and (await response.json())["error"]["code"], raw[:20]


async def test_a_static_file_name_too_long_for_the_file_system_is_a_404(aiohttp_client, tmp_path) -> None:
    client: TestClient = await aiohttp_client(_app(tmp_path))
    for name in ("a" * 256, "a" * 5000, "page.html/" + "b" * 300):
        response = await client.get(f"/static/{name}")
        assert response.status == 404 and (await response.json())["error"]["code"] == "not_found"
    assert (await client.get("/static/page.html")).status == 200


async def test_a_range_no_file_can_satisfy_is_our_json_416(aiohttp_client, tmp_path) -> None:
    client: TestClient = await aiohttp_client(_app(tmp_path))
    for range_ in ("w", "bytes=999999999-", "bytes=5-1"):
        response = await client.get("/static/page.html", headers={"Range": range_})
        assert response.status == 416, range_
        assert (await response.json())["error"]["code"] == "requested_range_not_satisfiable"
        assert response.headers["Content-Range"].startswith("bytes */")
    assert (await client.get("/static/page.html", headers={"Range": "bytes=0-1"})).status == 206


async def test_a_client_hanging_up_mid_answer_is_logged_at_info(aiohttp_client, tmp_path) -> None:
    finished = asyncio.Event()
    app = _app(tmp_path)

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            while True:  # until the client's hang-up makes a write fail
                await response.write(b"x" * 65536)
        finally:
            finished.set()

    app.router.add_get("/stream", stream)
    client: TestClient = await aiohttp_client(app)
    mark = len(LOG_LINES)
    response = await client.get("/stream")
    await response.content.readexactly(1024)
    response.close()
    await asyncio.wait_for(finished.wait(), 5)
    await client.close()
    logged = [json.loads(line) for line in LOG_LINES[mark:]]
    # aiohttp cancels the handler or its write fails, depending on when it learns of the hang-up: both at info.
    assert [r["level"] for r in logged if r["event"] in ("http_client_gone", "http_cancelled")] == ["info"]
    assert not [r for r in logged if r["level"] == "error"]


async def test_readiness_runs_a_script_not_just_a_ping(aiohttp_client, tmp_path) -> None:
    redis = start_redis(tmp_path / "redis")
    try:
        admin = Redis.from_url(redis.url)
        await admin.acl_setuser(
            "noscript", enabled=True, passwords=["+pw-noscript"], keys=["~*"], categories=["+@all", "-@scripting"]
        )
        await admin.aclose()
        url = redis.url.replace("redis://", "redis://noscript:pw-noscript@")
        client: TestClient = await aiohttp_client(_app(tmp_path, url))
        response = await client.get("/readyz")
        assert (response.status, (await response.json())["down"]) == (503, ["redis"])
    finally:
        redis.stop()


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    """Until ``condition()`` holds (the cluster's nodes agree on a failure within a few seconds), bounded."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _serving_masters(cluster: RedisCluster) -> list[int]:
    """Ports of the live masters that serve slots. ``cluster.masters()`` may also name a fresh replica that a node
    still sees as a master without slots, just after the cluster was created."""
    ports = []
    for line in cluster.cli("cluster", "nodes").splitlines():
        fields = line.split()
        if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8:
            ports.append(int(fields[1].split(":")[1].split("@")[0]))
    return sorted(ports)


def _wait_failover(cluster: RedisCluster, dead_port: int) -> None:
    _wait_for(lambda: len(set(_serving_masters(cluster)) - {dead_port}) == 3, "no replica was promoted")
    cluster.wait_ok()


@pytest.mark.cluster
@pytest.mark.timeout(60)
async def test_readiness_on_a_cluster_needs_every_master(aiohttp_client, tmp_path) -> None:
    """A dead master is 503 until its replica takes over; a master lost without a replica stays 503."""
    cluster = await asyncio.to_thread(start_redis_cluster, tmp_path / "cluster", masters=3, replicas=1)
    try:
        client: TestClient = await aiohttp_client(_app(tmp_path, cluster.url, redis_mode="cluster"))
        assert (await client.get("/readyz")).status == 200
        masters = _serving_masters(cluster)
        [dead] = [node for node in cluster.nodes if node.port == masters[1]]
        dead.process.kill()
        dead.process.wait()
        response = await client.get("/readyz")
        assert (response.status, (await response.json())["down"]) == (503, ["redis"])

        await asyncio.to_thread(_wait_failover, cluster, dead.port)  # its replica took its slots over
        assert (await client.get("/readyz")).status == 200

        [promoted] = [node for node in cluster.nodes if node.port in set(_serving_masters(cluster)) - set(masters)]
        promoted.process.kill()  # its slots now have no master at all
        promoted.process.wait()
        response = await client.get("/readyz")
        assert (response.status, (await response.json())["down"]) == (503, ["redis"])
        await asyncio.to_thread(_wait_for, lambda: "cluster_state:fail" in cluster.cli("cluster", "info"), "not fail")
        assert (await client.get("/readyz")).status == 503
    finally:
        cluster.stop()


async def test_a_failed_background_loop_is_restarted_and_reported_while_down(aiohttp_client, tmp_path) -> None:
    app = _app(tmp_path)
    client: TestClient = await aiohttp_client(app)
    runs, back = 0, asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("first run fails")
        back.set()
        await asyncio.Event().wait()

    failed = asyncio.Event()

    async def broken() -> None:
        failed.set()
        raise ValueError("always")

    async with supervised(app, "flaky", flaky):
        await asyncio.wait_for(back.wait(), 5)
        response = await client.get("/readyz")
        assert response.status == 200
        loops = (await response.json())["loops"]
        assert loops == {"flaky": {"running": True, "restarts": 1, "last_error": "RuntimeError"}}
        async with supervised(app, "broken", broken, max_backoff_s=60):
            await asyncio.wait_for(failed.wait(), 5)
            response = await client.get("/readyz")
            assert (response.status, (await response.json())["down"]) == (503, ["loop:broken"])
        assert (await client.get("/readyz")).status == 200

"""HTTP edge shared by every service: request context and error translation, CORS, JSON bodies, health, metrics.

``setup_edge(app, ...)`` installs it all; a service's ``create_app`` then only adds its own routes.

Failure model, one answer per kind of failure, whatever layer it comes from:

- bad input (our validation, aiohttp's parser, a garbled compressed body, an unknown route or method, a static file
  name the file system refuses) → 4xx with our JSON error body;
- a dependency outage (Redis or NATS unreachable, slow, or its pool exhausted) → 503 ``unavailable`` with
  ``Retry-After``, logged at warning without a traceback; handlers just let those errors through;
- overload (``HTTP_MAX_CONNECTIONS`` requests in progress) → 503 with ``Retry-After`` before any work;
- a body slower than ``HTTP_BODY_TIMEOUT_S`` → 408, connection closed;
- a client that hung up → logged at info; anything else is a bug: logged with a traceback, answered 500.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from stat import S_ISREG
from typing import Any, TypeVar

import structlog
from aiohttp import WSCloseCode, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ValidationError
from structlog.contextvars import bind_contextvars, clear_contextvars

from . import protocol_errors
from .errors import (
    BadRequest,
    CobrowseError,
    NotFound,
    RateLimited,
    RequestTimeout,
    Unavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from .jsonbody import dumps, parse_json
from .keys import BACKGROUND, NATS, REDIS, WEBSOCKETS
from .outages import outage_of
from .readiness import RedisProbe
from .rpc import validation_errors
from .settings import ServiceSettings

__all__ = ["client_ip", "error_response", "json_response", "read_json", "setup_edge", "static_file"]

log = structlog.get_logger()
M = TypeVar("M", bound=BaseModel)

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["service", "route", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

CLIENT_GONE_STATUS = 499
"""Metrics status of a request whose client hung up before its answer (nginx's convention); never sent."""


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """Every JSON answer of ours, encoded by ``jsonbody.dumps`` (orjson)."""
    return web.Response(body=dumps(data), status=status, headers=headers, content_type="application/json")


def error_response(exc: CobrowseError, headers: dict[str, str] | None = None) -> web.Response:
    headers = dict(headers or {})
    if isinstance(exc, RateLimited | Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
    elif exc.status == 503:  # another service's 503 relayed (RemoteError)
        headers.setdefault("Retry-After", "1")
    return json_response(exc.to_dict(), status=exc.status, headers=headers)


def _http_exception_response(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        raise exc
    code = exc.reason.lower().replace(" ", "_")
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
    body = {"error": {"code": code, "message": exc.text or exc.reason}}
    if exc.status == 413:
        body["error"]["code"] = "payload_too_large"
    return json_response(body, status=exc.status, headers=headers)


async def _read_body(request: web.Request, timeout_s: float) -> None:
    """Read (and cache for the handler) a request body within ``timeout_s``; a garbled body is a 400."""
    if not request.body_exists or request.headers.get(hdrs.UPGRADE):
        return
    try:
        if request.content.is_eof():
            await request.read()  # all of it has arrived (a beacon, in one packet): no deadline to arm
        else:
            async with asyncio.timeout(timeout_s):
                await request.read()
    except TimeoutError as exc:
        raise RequestTimeout() from exc
    except (HttpProcessingError, RequestPayloadError) as exc:
        code, message = protocol_errors.describe(exc.__cause__ or exc)
        raise BadRequest(message, code=code) from exc


def _file_size(path: Path) -> int | None:
    """The size of a regular file, ``None`` for anything else (missing, a directory, a name the system refuses)."""
    try:
        stat = path.stat()
    except OSError:  # e.g. a name longer than the file system allows
        return None
    return stat.st_size if S_ISREG(stat.st_mode) else None


def _check_range(request: web.Request, size: int) -> None:
    """A ``Range`` aiohttp's file response would refuse with an empty 416 gets our JSON 416 instead."""
    if hdrs.RANGE not in request.headers:
        return
    try:
        wanted = request.http_range
    except ValueError:
        wanted = None
    if wanted is None or (wanted.start is not None and wanted.start >= size):
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


def _failure_response(request: web.Request, exc: Exception, retry_after: int) -> web.StreamResponse:
    """The answer to an exception a handler raised (see the module's failure model)."""
    if isinstance(exc, CobrowseError):
        log.info("http_rejected", code=exc.code, status=exc.status)
        return error_response(exc)
    if isinstance(exc, web.HTTPException):
        return _http_exception_response(exc)
    dependency = outage_of(exc)
    if dependency is not None:
        log.warning("http_unavailable", dependency=dependency, error=type(exc).__name__)
        return error_response(Unavailable(f"{dependency} unavailable, retry", retry_after=retry_after))
    if isinstance(exc, ConnectionResetError):  # aiohttp's ClientConnectionResetError included
        log.info("http_client_gone", error=type(exc).__name__)
        return web.Response(status=CLIENT_GONE_STATUS)
    if isinstance(exc, OSError) and exc.errno in (errno.ENAMETOOLONG, errno.ENOTDIR):
        # The static handler asks the file system about any name a client sends.
        return error_response(NotFound("no such file", code="not_found"))
    log.exception("http_failed")
    return error_response(CobrowseError())


def _edge_middleware(service: str, settings: ServiceSettings) -> Middleware:
    # Metric children per route (and status), looked up once: ``labels()`` costs more than the update itself.
    counters: dict[tuple[str, int], Counter] = {}
    latencies: dict[str, Histogram] = {}
    in_progress = 0
    cap, retry_after = settings.http_max_connections, settings.retry_after_s
    body_timeout_s = settings.http_body_timeout_s
    # The access log's call costs ~2 % of a beacon even when its level is off: skip it then.
    access_log = logging.getLevelName(settings.log_level.upper()) <= logging.INFO

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_progress
        clear_contextvars()
        request_id = request.headers.get("X-Request-ID") or os.urandom(16).hex()
        bind_contextvars(request_id=request_id, method=request.method, path=request.path)
        started = time.perf_counter()
        in_progress += 1
        body_failed = False
        try:
            if in_progress > cap and request.path not in ("/healthz", "/readyz"):
                raise Unavailable("too many requests in progress, retry", code="overloaded", retry_after=retry_after)
            body_failed = True
            await _read_body(request, body_timeout_s)
            body_failed = False
            response = await handler(request)
            if isinstance(response, web.FileResponse):
                # aiohttp would find out only while sending, and answer a bare 404 (or a 500 for a name the file
                # system refuses as too long) or an empty 416.
                size = await asyncio.to_thread(_file_size, response._path)
                if size is None:
                    raise NotFound("no such file", code="not_found")
                _check_range(request, size)
        except asyncio.CancelledError:
            log.info("http_cancelled")
            raise
        except Exception as exc:
            response = _failure_response(request, exc, retry_after)
            if request.writer.output_size > 0:
                # A WebSocket or a stream already answered: an HTTP response now would corrupt it, so just close.
                request.protocol.force_close()
            elif body_failed and response.status in (400, 408):
                # The rest of the body may never come, or cannot be decoded: answer now and close, rather than let
                # aiohttp wait for (or read) the rest of it. (A 413's rest is read and dropped by aiohttp.)
                response.headers["X-Request-ID"] = request_id
                response.force_close()
                await response.prepare(request)
                await response.write_eof()
                request.protocol.force_close()
        finally:
            in_progress -= 1
        route = request.match_info.route.resource
        route_name = route.canonical if route is not None else "unmatched"
        elapsed = time.perf_counter() - started
        status = response.status
        counter = counters.get((route_name, status))
        if counter is None:
            counter = counters[route_name, status] = HTTP_REQUESTS.labels(service, route_name, str(status))
        counter.inc()
        latency = latencies.get(route_name)
        if latency is None:
            latency = latencies[route_name] = HTTP_LATENCY.labels(service, route_name)
        latency.observe(elapsed)
        if not response.prepared:
            response.headers["X-Request-ID"] = request_id
        if access_log:
            log.info("http_request", status=status, duration_ms=round(elapsed * 1000, 3))
        return response

    return edge


def _cors_middleware(origins: Iterable[str]) -> Middleware:
    allowed = frozenset(origins)
    allow_any = "*" in allowed

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        permitted = allow_any or origin in allowed
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not permitted:
                return error_response(CobrowseError("origin not allowed", code="cors_forbidden", status=403))
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
            requested = request.headers.get("Access-Control-Request-Headers")
            if requested:
                response.headers["Access-Control-Allow-Headers"] = requested
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = _http_exception_response(exc)
        if permitted and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = "*" if allow_any else origin
            response.headers["Vary"] = "Origin"
        return response

    return cors


async def _healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


_REDIS_PROBE = web.AppKey("cobrowse_redis_probe", RedisProbe)
"""``/readyz``'s Redis check: a script on every master (``shared.readiness``)."""


async def _readyz(request: web.Request) -> web.Response:
    app = request.app
    checks: dict[str, Callable[[], Awaitable[Any]]] = {}
    if REDIS in app:
        redis, probe = app[REDIS], app[_REDIS_PROBE]

        async def redis_ok() -> None:
            await probe(redis)

        checks["redis"] = redis_ok
    if NATS in app:
        nc = app[NATS]

        async def nats_ok() -> None:
            if not nc.is_connected:
                raise ConnectionError("not connected")
            await nc.flush(timeout=1)

        checks["nats"] = nats_ok
    down: list[str] = []
    for name, check in checks.items():
        try:
            async with asyncio.timeout(1.5):
                await check()
        except Exception:
            down.append(name)
    loops = app.get(BACKGROUND, {})
    down += [f"loop:{name}" for name, health in loops.items() if not health.running]
    body: dict[str, Any] = {"loops": {name: health.to_dict() for name, health in loops.items()}} if loops else {}
    if down:
        return json_response({"status": "unavailable", "down": down, **body}, status=503)
    return json_response({"status": "ready", **body})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _close_websockets(app: web.Application) -> None:
    open_sockets = app[WEBSOCKETS]
    for ws in list(open_sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def setup_edge(app: web.Application, *, service: str, settings: ServiceSettings) -> None:
    """Install the edge middlewares, ``/healthz``, ``/readyz``, ``/metrics`` and socket tracking on ``app``.

    ``settings`` gives the CORS origins and the caps (``HTTP_MAX_CONNECTIONS``, ``HTTP_BODY_TIMEOUT_S``).
    """
    protocol_errors.install()
    # CORS is outermost so that the error responses the edge builds from exceptions carry its headers too.
    app.middlewares.append(_cors_middleware(settings.cors_origins))
    app.middlewares.append(_edge_middleware(service, settings))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app[WEBSOCKETS] = weakref.WeakSet()
    app[BACKGROUND] = {}
    app[_REDIS_PROBE] = RedisProbe()
    app.on_shutdown.append(_close_websockets)


def static_file(path: Path, *, cache_control: str = "no-cache") -> Handler:
    """A handler serving one file of a service's package (a page, a script, a document).

    ``no-cache`` by default: browsers revalidate (cheap, with ETag/Last-Modified) so a deploy shows at once.
    """

    async def serve(request: web.Request) -> web.StreamResponse:
        if not await asyncio.to_thread(path.is_file):
            raise NotFound(f"{path.name} is not installed", code="file_missing")
        return web.FileResponse(path, headers={"Cache-Control": cache_control})

    return serve


async def read_json(request: web.Request, model: type[M], *, allow_text_plain: bool = False) -> M:
    """Parse and validate a JSON request body into ``model``.

    Raises ``UnsupportedMediaType`` for other content types, ``BadRequest`` for unparsable, too deep or non-finite
    bodies (``shared.jsonbody.parse_json``), ``ValidationFailed`` naming every bad field, and aiohttp's 413 past
    ``client_max_size``.
    ``allow_text_plain`` admits ``text/plain``, which is what ``navigator.sendBeacon`` sends for a string.
    """
    ctype = request.content_type
    if ctype != "application/json" and not (allow_text_plain and ctype == "text/plain"):
        raise UnsupportedMediaType()
    data = parse_json(await request.read())
    if not isinstance(data, dict):
        raise ValidationFailed.one("body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(validation_errors(exc)) from exc


def client_ip(request: web.Request, trusted_proxies: Sequence[IPv4Network | IPv6Network] = ()) -> str:
    """The caller's IP, for rate limits and audit; never an address the client chose.

    With no ``trusted_proxies`` (``TRUSTED_PROXIES``) it is the direct peer. When the peer is a trusted proxy, it
    is the right-most ``X-Forwarded-For`` hop that is not itself a trusted proxy: each proxy appends the address
    that connected to it, so hops right of that one were written by proxies we trust and hops left of it by the
    client (who may write anything). A hop that is not an address (garbage, an obfuscated ``unknown``) ends the
    walk at the last trusted address seen, so a client cannot get a fresh identity by sending nonsense.
    """
    peer = request.remote or ""
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", ()))
    client = peer
    for hop in reversed(forwarded.split(",")):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, trusted_proxies):
            break
    return client


def _address(hop: str) -> str | None:
    """The IP address in one ``X-Forwarded-For`` hop (``[v6]:port`` and ``v4:port`` forms accepted), else None."""
    hop = hop.strip()
    if hop.startswith("["):
        hop, closed, _ = hop[1:].partition("]")
        if not closed:
            return None
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        return str(ip_address(hop))
    except ValueError:
        return None


def _trusted(address: str, trusted_proxies: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted_proxies)

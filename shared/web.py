"""HTTP edge shared by every service: request context and error translation, CORS, JSON bodies, health, metrics.

``setup_edge(app, ...)`` installs it all; a service's ``create_app`` then only adds its own routes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from typing import Any, TypeVar

import structlog
from aiohttp import WSCloseCode, web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ValidationError
from structlog.contextvars import bind_contextvars, clear_contextvars

from .errors import BadRequest, CobrowseError, NotFound, RateLimited, UnsupportedMediaType, ValidationFailed
from .keys import NATS, REDIS, WEBSOCKETS
from .rpc import validation_errors

__all__ = ["client_ip", "error_response", "read_json", "setup_edge", "static_file"]

log = structlog.get_logger()
M = TypeVar("M", bound=BaseModel)

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["service", "route", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


def error_response(exc: CobrowseError, headers: dict[str, str] | None = None) -> web.Response:
    headers = dict(headers or {})
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return web.json_response(exc.to_dict(), status=exc.status, headers=headers)


def _http_exception_response(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        raise exc
    code = exc.reason.lower().replace(" ", "_")
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
    body = {"error": {"code": code, "message": exc.text or exc.reason}}
    if exc.status == 413:
        body["error"]["code"] = "payload_too_large"
    return web.json_response(body, status=exc.status, headers=headers)


def _edge_middleware(service: str) -> Middleware:
    # Metric children per route (and status), looked up once: ``labels()`` costs more than the update itself.
    counters: dict[tuple[str, int], Counter] = {}
    latencies: dict[str, Histogram] = {}

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        clear_contextvars()
        request_id = request.headers.get("X-Request-ID") or os.urandom(16).hex()
        bind_contextvars(request_id=request_id, method=request.method, path=request.path)
        started = time.perf_counter()
        try:
            response = await handler(request)
        except CobrowseError as exc:
            response = error_response(exc)
            log.info("http_rejected", code=exc.code, status=exc.status)
        except web.HTTPException as exc:
            response = _http_exception_response(exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("http_failed")
            response = error_response(CobrowseError())
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
        log.info("http_request", status=response.status, duration_ms=round(elapsed * 1000, 3))
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
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    app = request.app
    checks: dict[str, Callable[[], Awaitable[Any]]] = {}
    if REDIS in app:
        checks["redis"] = app[REDIS].ping
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
    if down:
        return web.json_response({"status": "unavailable", "down": down}, status=503)
    return web.json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _close_websockets(app: web.Application) -> None:
    open_sockets = app[WEBSOCKETS]
    for ws in list(open_sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def setup_edge(app: web.Application, *, service: str, cors_origins: Iterable[str]) -> None:
    """Install the edge middlewares, ``/healthz``, ``/readyz``, ``/metrics`` and socket tracking on ``app``."""
    # CORS is outermost so that the error responses the edge builds from exceptions carry its headers too.
    app.middlewares.append(_cors_middleware(cors_origins))
    app.middlewares.append(_edge_middleware(service))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app[WEBSOCKETS] = weakref.WeakSet()
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

    Raises ``UnsupportedMediaType`` for other content types, ``BadRequest`` (``malformed_json``) for
    unparsable bodies, ``ValidationFailed`` naming every bad field, and aiohttp's 413 past ``client_max_size``.
    ``allow_text_plain`` admits ``text/plain``, which is what ``navigator.sendBeacon`` sends for a string.
    """
    ctype = request.content_type
    if ctype != "application/json" and not (allow_text_plain and ctype == "text/plain"):
        raise UnsupportedMediaType()
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("body is not valid JSON", code="malformed_json") from exc
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

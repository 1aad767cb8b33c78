"""JSON answers for the requests aiohttp rejects before any middleware runs.

aiohttp's HTTP parser (bad request line, bad or too-long header, bad chunking) hands its error to
``RequestHandler.handle_error``, which answers ``text/plain`` echoing the offending bytes (a header may hold a
credential) and logs them at error level with a traceback. aiohttp has no hook for that path (aio-libs/aiohttp#3287),
so ``install()`` replaces that one method, once per process: our JSON error body with a fixed message that echoes
nothing, a 400 logged at info naming only the error class, a client that hung up logged at info.
"""

from __future__ import annotations

import json

import structlog
from aiohttp import http_exceptions as hx
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

__all__ = ["describe", "install"]

log = structlog.get_logger()

# Most specific first: each parser error class with the code and message we answer with.
_PARSER_ERRORS: tuple[tuple[type[Exception], str, str], ...] = (
    (hx.LineTooLong, "line_too_long", "request line or header too long"),
    (hx.InvalidHeader, "invalid_header", "malformed header"),
    (hx.BadStatusLine, "bad_request_line", "malformed request line"),
    (hx.InvalidURLError, "invalid_url", "malformed URL"),
    (hx.ContentEncodingError, "bad_content_encoding", "the body does not decode with its Content-Encoding"),
    (hx.DecompressSizeError, "payload_too_large", "the decompressed body is too large"),
    (hx.PayloadEncodingError, "bad_body_framing", "the body does not match its framing headers"),
    (hx.BadHttpMessage, "bad_http_message", "malformed HTTP request"),
)


def describe(exc: BaseException | None) -> tuple[str, str]:
    """Our error code and a fixed message for an aiohttp parser error (never its text: it echoes the input)."""
    for cls, code, message in _PARSER_ERRORS:
        if isinstance(exc, cls):
            return code, message
    return "bad_request", "malformed HTTP request"


def _handle_error(
    self: RequestHandler,
    request: BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    if isinstance(exc, ConnectionError):
        log.info("http_client_gone", error=type(exc).__name__)
    elif status < 500:
        log.info("http_bad_message", status=status, error=type(exc).__name__)
    else:
        log.error("http_protocol_error", status=status, error=type(exc).__name__)
    if request.writer.output_size > 0:
        # Same contract as aiohttp's: with part of a response on the wire, only closing is left.
        raise ConnectionError("response already started")
    if status < 500:
        code, text = describe(exc)
    elif status == 504:
        code, text = "timeout", "the request took too long"
    else:
        code, text = "internal", "internal error"
    response = web.Response(
        status=status,
        body=json.dumps({"error": {"code": code, "message": text}}).encode(),
        content_type="application/json",
    )
    response.force_close()
    return response


def install() -> None:
    """Route aiohttp's protocol-level errors through ``_handle_error`` (idempotent)."""
    RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]  # no supported hook: see module doc

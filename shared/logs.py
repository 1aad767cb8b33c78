"""structlog configuration, done once per process by ``configure_logging``.

Our own events go straight from structlog to the output stream (no trip through the standard library's
``logging``, which costs a stack walk and a second record per line). Standard-library records (aiohttp, nats,
asyncio) go through the same renderer via ``ProcessorFormatter``, so every line has one shape: JSON when not on a
terminal, coloured console output on one.

Hygiene, whatever a client sends: every rendered line passes ``redact``, which masks credentials by shape (API keys
``cbk_…``, ``Bearer``/``Basic`` values, JWTs ``eyJ…``, session tokens ``v1.<session>.<signature>``) and by value (the
secrets ``configure_logging`` is given: the SDK, session-token and webhook secrets, a Redis password). aiohttp's own
parser errors echo request bytes, so this covers standard-library records too. A client that hung up
(``ConnectionResetError``, a ``CancelledError``) is logged at info without a traceback, whichever logger reports it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

__all__ = ["configure_logging", "redact"]

_CREDENTIALS = re.compile(
    r"(?P<key>cbk_)[A-Za-z0-9_-]+"
    r"|(?P<auth>(?i:bearer|basic)\s+)[^\s\"',;\\]+"
    r"|(?P<jwt>eyJ)[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){0,2}"
    r"|(?P<session>\bv1\.[^.\s\"'\\]{1,128}\.)[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"
)
_MIN_SECRET_CHARS = 8  # shorter values would mask ordinary words
_secret_values: re.Pattern[str] | None = None


def _mask(match: re.Match[str]) -> str:
    return next(group for group in match.groups() if group) + "***"


def redact(text: str) -> str:
    """``text`` with every credential masked (see the module docstring)."""
    text = _CREDENTIALS.sub(_mask, text)
    if _secret_values is not None:
        text = _secret_values.sub("***", text)
    return text


def _redacting(renderer: Processor) -> Processor:
    def render(logger: Any, name: str, event: Any) -> Any:
        line = renderer(logger, name, event)
        return redact(line) if isinstance(line, str) else line

    return render


class _StdlibHygiene(logging.Filter):
    """Masks credentials in a standard-library record's message and reports a hang-up at info."""

    def __init__(self, level_no: int) -> None:
        super().__init__()
        self.level_no = level_no

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ConnectionResetError | asyncio.CancelledError) and record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
        record.msg, record.args = redact(record.getMessage()), None
        return record.levelno >= self.level_no


def configure_logging(
    level: str = "INFO",
    json: bool | None = None,
    *,
    cache: bool = True,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog and the standard library's root logger.

    Args:
        level: minimum level name (``DEBUG``, ``INFO``, ...).
        json: JSON lines; ``None`` chooses JSON unless stderr is a terminal.
        cache: cache loggers on first use (production); tests pass ``False`` so they can reconfigure.
        stream: where lines go; default ``sys.stderr``.
        secrets: values never to print (configuration secrets); credentials with a known shape need not be listed.
    """
    global _secret_values
    values = sorted({value for value in secrets if len(value) >= _MIN_SECRET_CHARS}, key=len, reverse=True)
    _secret_values = re.compile("|".join(map(re.escape, values))) if values else None
    stream = stream or sys.stderr
    if json is None:
        json = not sys.stderr.isatty()
    level_no = logging.getLevelNamesMapping()[level.upper()]
    renderer = _redacting(
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    # Tracebacks as data, without local variables: a frame's locals may hold a secret.
    exc_processors: list[Processor] = (
        [structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))]
        if json
        else []
    )
    common: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]

    structlog.configure(
        processors=[*common, *exc_processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*common, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exc_processors, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(_StdlibHygiene(level_no))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    # One canonical line per request comes from our own middleware; aiohttp's access log would repeat it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

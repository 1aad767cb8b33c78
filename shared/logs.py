"""structlog configuration, done once per process by ``configure_logging``.

Our own events go straight from structlog to the output stream (no trip through the standard library's
``logging``, which costs a stack walk and a second record per line). Standard-library records (aiohttp, nats,
asyncio) go through the same renderer via ``ProcessorFormatter``, so every line has one shape: JSON when not on a
terminal, coloured console output on one.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import Processor

__all__ = ["configure_logging"]


def configure_logging(
    level: str = "INFO", json: bool | None = None, *, cache: bool = True, stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's root logger.

    Args:
        level: minimum level name (``DEBUG``, ``INFO``, ...).
        json: JSON lines; ``None`` chooses JSON unless stderr is a terminal.
        cache: cache loggers on first use (production); tests pass ``False`` so they can reconfigure.
        stream: where lines go; default ``sys.stderr``.
    """
    stream = stream or sys.stderr
    if json is None:
        json = not sys.stderr.isatty()
    level_no = logging.getLevelNamesMapping()[level.upper()]
    renderer: Processor = (
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    # One canonical line per request comes from our own middleware; aiohttp's access log would repeat it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

"""structlog configuration, done once per process by ``configure_logging``.

Standard-library records (aiohttp.access, nats, asyncio) go through the same processors, so every line a
service writes has the same shape: JSON when not on a terminal, coloured console output on one.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import Processor

__all__ = ["configure_logging", "shared_processors"]

shared_processors: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "INFO", json: bool | None = None, *, cache: bool = True) -> None:
    """Configure structlog and the standard library's root logger.

    Args:
        level: minimum level name (``DEBUG``, ``INFO``, ...).
        json: JSON lines; ``None`` chooses JSON unless stderr is a terminal.
        cache: cache loggers on first use (production); tests pass ``False`` so they can reconfigure.
    """
    if json is None:
        json = not sys.stderr.isatty()
    level_no = logging.getLevelNamesMapping()[level.upper()]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    exc_processors: list[Processor] = [structlog.processors.dict_tracebacks] if json else []

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *exc_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exc_processors, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_no)
    # One canonical line per request comes from our own middleware; aiohttp's access log would repeat it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

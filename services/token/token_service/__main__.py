"""``python -m token_service``: configure logging, read settings (exit 2 naming any bad one), serve."""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web
from pydantic import ValidationError

from shared.logs import configure_logging

from .app import create_app
from .settings import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # Name each setting and the problem, never the value: it may be a secret.
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            problem = "is required" if error["type"] in ("missing", "too_short") else error["msg"]
            print(f"token service: setting {name} {problem} (environment or .env)", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    # uvloop: a faster event loop, as in the session registry (the bench's ceiling runs on it too).
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()

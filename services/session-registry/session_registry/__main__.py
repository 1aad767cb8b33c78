"""``python -m session_registry``: run one registry replica."""

from __future__ import annotations

import uvloop
from aiohttp import web

from shared.logs import configure_logging
from shared.settings import load_settings

from .app import create_app
from .settings import Settings


def main() -> None:
    settings = load_settings(Settings, "session-registry")
    configure_logging(settings.log_level, settings.log_json)
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

"""``python -m notification_service``: run one replica."""

from __future__ import annotations

from aiohttp import web

from shared.logs import configure_logging

from .app import create_app
from .settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log=None)


if __name__ == "__main__":
    main()

"""``python -m session_registry``: run one replica of the session-registry service."""

from shared.service import run_service

from .app import create_app
from .settings import Settings

if __name__ == "__main__":
    run_service("session-registry", Settings, create_app)

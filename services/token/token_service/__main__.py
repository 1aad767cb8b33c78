"""``python -m token_service``: run one replica of the token service."""

from shared.service import run_service

from .app import create_app
from .settings import Settings

if __name__ == "__main__":
    run_service("token", Settings, create_app)

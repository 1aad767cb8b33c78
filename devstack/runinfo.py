"""What a running ``make up`` tells the other local tools: where its servers are, and which keys are whose.

``make up`` writes ``.run/urls.env`` (dotenv format, mode 0600, removed when it stops): ``REDIS_URL``,
``NATS_URL`` and each service's URL. ``cobrowse-accounts`` takes its Redis from there when ``REDIS_URL`` is not
set, and ``make demo`` its token service URL. ``.run/dev-accounts.json`` holds ``{label: api_key}``: the humans'
demo accounts (printed in the banner) and the simulator's own agents (labels starting with ``simulator``), so the
simulator never signs in as, and never disconnects, a person using a printed key.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

__all__ = [
    "ACCOUNTS_FILE",
    "RUN_DIR",
    "SIMULATOR_LABEL",
    "URLS_FILE",
    "configured",
    "dotenv",
    "read_urls",
    "remove_urls",
    "write_urls",
]

RUN_DIR = Path(".run")
URLS_FILE = "urls.env"
ACCOUNTS_FILE = "dev-accounts.json"
SIMULATOR_LABEL = "simulator"


def dotenv() -> dict[str, str]:
    """The values of ``./.env``, which the services read too."""
    return {k: v for k, v in dotenv_values(".env").items() if v is not None}


def configured() -> dict[str, str]:
    """The environment over ``.env``, as the services see their settings."""
    return {**dotenv(), **os.environ}


def write_urls(run_dir: Path, urls: dict[str, str]) -> Path:
    path = run_dir / URLS_FILE
    lines = ["# Written by `make up` while it runs (removed when it stops): where its servers are."]
    lines += [f"{name}={url}" for name, url in urls.items()]
    path.touch(mode=0o600)
    path.chmod(0o600)  # a REDIS_URL of yours may carry a password
    path.write_text("\n".join(lines) + "\n")
    return path


def read_urls(run_dir: Path = RUN_DIR) -> dict[str, str]:
    path = run_dir / URLS_FILE
    if not path.exists():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v}


def remove_urls(run_dir: Path) -> None:
    (run_dir / URLS_FILE).unlink(missing_ok=True)

"""``run_service``, what every service's ``python -m`` does, checked on a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

from devstack.servers import free_port
from devstack.stack import wait_until_ready

# A service whose readiness answer reports the collector's frozen objects.
SERVICE = """
import gc

from aiohttp import web

from shared.service import run_service
from shared.settings import ServiceSettings


def create_app(settings):
    async def ready(request):
        return web.json_response({"frozen": gc.get_freeze_count()})

    app = web.Application()
    app.router.add_get("/readyz", ready)
    return app


run_service("probe", ServiceSettings, create_app)
"""


def test_a_service_keeps_its_startup_heap_out_of_full_collections() -> None:
    """Full collections would scan all of it each time: pauses of tens of ms under load (see shared/service.py)."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-c", SERVICE], env=env, stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, lambda: process.poll() is not None, 20)
        with urllib.request.urlopen(url + "/readyz", timeout=5) as response:
            assert json.load(response)["frozen"] > 10_000
    finally:
        process.terminate()
        process.wait()

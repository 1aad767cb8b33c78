"""The registry's floor: the least an aiohttp server can do to take a beacon.

``python -m bench.floor PORT``: ``POST /beacons`` parses the JSON body and answers 202 with a small JSON body, on
uvloop like the services, without validation, credentials, Redis, logging or metrics. ``GET /readyz`` answers so
the harness can wait for it. The ``scale`` suite prints the registry's CPU per beacon as a multiple of this one's.
"""

from __future__ import annotations

import json
import sys

import uvloop
from aiohttp import web


async def beacon(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    accepted = len(body.get("events") or [body.get("event")])
    return web.json_response({"accepted": accepted, "duplicates": 0, "ignored": 0}, status=202)


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def main() -> None:
    app = web.Application()
    app.router.add_post("/beacons", beacon)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()

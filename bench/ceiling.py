"""The token bench's ceiling: the least an aiohttp server can do to issue a token.

``python -m bench.ceiling PORT``: ``POST /`` parses the JSON body and signs the same HS256 claims with pyjwt,
without validation, rate limits, logging or metrics, on uvloop like the services. ``GET /readyz`` answers so the
harness can wait for it.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jwt
import uvloop
from aiohttp import web

SDK_KEY = os.environ["ZOOM_SDK_KEY"]
SDK_SECRET = os.environ["ZOOM_SDK_SECRET"]


async def issue(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    now = int(time.time())
    claims = {
        "app_key": SDK_KEY,
        "role_type": body["role"],
        "user_id": body["userId"],
        "user_name": body["userName"],
        "iat": now,
        "exp": now + body.get("expirationSeconds", 7200),
    }
    return web.json_response({"token": jwt.encode(claims, SDK_SECRET, algorithm="HS256")})


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def main() -> None:
    app = web.Application()
    app.router.add_post("/", issue)
    app.router.add_get("/readyz", ready)
    # The same event loop as the services, so the ratio compares request handling, not loops.
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()

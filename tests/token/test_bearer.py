"""A bearer key with bytes that are not ASCII (or not UTF-8) is a 401 JSON answer, never a 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest


async def _raw_post(client: Any, path: str, authorization: bytes) -> tuple[int, dict[str, Any]]:
    """Send the header bytes as they are: aiohttp's client would refuse to encode them."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    body = b'{"pin": "123456", "role": 2}'
    writer.write(
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Authorization: " + authorization + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(payload)


@pytest.mark.parametrize("path", ["/", "/api/agent/connect"])
@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer cbk_\xff\xfe",
        b"Bearer cbk_\xc3\xa9t\xc3\xa9",
        b"Bearer \x80",
        b"\xff\xfe cbk_x",
        b"Bearer cbk_\xe2\x82",
    ],
)
async def test_non_ascii_bearer_key_is_a_json_401(client: Any, path: str, authorization: bytes) -> None:
    status, body = await _raw_post(client, path, authorization)
    assert status == 401
    assert body["error"]["code"] in ("unauthorized", "invalid_api_key")

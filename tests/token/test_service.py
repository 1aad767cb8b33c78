"""Service-level behaviour: start-up checks, the OpenAPI document, public configuration, pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import TEST_SDK_KEY, TEST_SDK_SECRET
from token_service.app import create_app
from token_service.http import OPENAPI_PATH, STATIC_DIR
from token_service.settings import Settings


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ZOOM_SDK_KEY": TEST_SDK_KEY}, "ZOOM_SDK_SECRET"),
        ({"ZOOM_SDK_KEY": TEST_SDK_KEY, "ZOOM_SDK_SECRET": ""}, "ZOOM_SDK_SECRET"),
        ({"ZOOM_SDK_SECRET": TEST_SDK_SECRET}, "ZOOM_SDK_KEY"),
        ({"ZOOM_SDK_KEY": TEST_SDK_KEY, "ZOOM_SDK_SECRET": TEST_SDK_SECRET, "TOKEN_PORT": "http"}, "PORT"),
    ],
)
def test_start_up_stops_naming_a_missing_or_bad_setting(tmp_path: Path, env: dict[str, str], named: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "TOKEN_"))}
    result = subprocess.run(
        [sys.executable, "-m", "token_service"],
        env={**clean, **env},
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert named in result.stderr
    assert TEST_SDK_SECRET not in result.stderr + result.stdout


def _documented(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for resource in app.router.resources():
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path += "/{path}"
        for route in resource:
            if route.method not in ("HEAD", "OPTIONS"):
                routes.add((route.method.lower(), path))
    return routes


def test_every_route_is_in_the_openapi_document(make_settings: Any) -> None:
    doc = json.loads(OPENAPI_PATH.read_text())
    assert doc["openapi"].startswith("3.1")
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert _documented(create_app(make_settings())) <= documented


async def test_openapi_document_is_served(client: Any) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    assert (await response.json())["info"]["title"] == "cobrowse-desk token service"


async def test_config_tells_pages_where_everything_is(make_client: Any) -> None:
    client = await make_client(zoom_simulated=True, zoom_host="eu01-zcb.zoom.us", zoom_sdk_version="3.10.x")
    body = await (await client.get("/api/config")).json()
    expected = {"sdk_key": TEST_SDK_KEY, "host": "eu01-zcb.zoom.us", "simulated": True, "sdk_version": "3.10.x"}
    assert body["zoom"] == expected
    assert set(body["urls"]) == {"token", "registry", "notification"}


@pytest.mark.parametrize(("path", "file"), [("/demo", "customer.html"), ("/demo/desk", "desk.html")])
async def test_pages_are_served_from_the_package(client: Any, path: str, file: str) -> None:
    response = await client.get(path)
    if (STATIC_DIR / file).exists():
        assert response.status == 200 and response.content_type == "text/html"
    else:
        assert response.status == 404


def test_settings_repr_hides_the_secret(make_settings: Any) -> None:
    settings: Settings = make_settings()
    assert TEST_SDK_SECRET not in repr(settings) and TEST_SDK_SECRET not in str(settings.model_dump())


def test_expiry_bounds_must_be_ordered(make_settings: Any) -> None:
    with pytest.raises(ValueError, match="TOKEN_MIN_EXPIRY_S"):
        make_settings(default_expiry_s=100)

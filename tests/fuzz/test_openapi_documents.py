"""Each service's OpenAPI document lists exactly the routes its app registers, and each is served as written."""

from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from aiohttp import web
from schemathesis.core.result import Err

from tests.fuzz.stack import OPENAPI, SERVICES, Stack, create_apps

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def registered_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route; a static directory is ``<prefix>/{path}``, as the documents write it.

    ``HEAD`` is left out: aiohttp adds it beside every ``GET``, and the documents describe the ``GET``.
    """
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        if isinstance(route.resource, web.StaticResource):
            path += "/{path}"
        routes.add((route.method, path))
    return routes


def documented_routes(service: str) -> set[tuple[str, str]]:
    doc = json.loads(OPENAPI[service].read_text())
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops if method in HTTP_METHODS}


@pytest.mark.parametrize("service", SERVICES)
def test_document_lists_exactly_the_registered_routes(service: str) -> None:
    # create_app does no I/O, so the URLs need no servers behind them.
    app = create_apps("redis://127.0.0.1:1/0", "nats://127.0.0.1:1")[service]
    registered, documented = registered_routes(app), documented_routes(service)
    assert registered - documented == set(), "routes the document does not describe"
    assert documented - registered == set(), "documented routes the app does not have"


@pytest.mark.parametrize("service", SERVICES)
def test_every_documented_operation_loads_in_schemathesis(service: str) -> None:
    schema = schemathesis.openapi.from_path(OPENAPI[service])
    results = list(schema.get_all_operations())
    assert results
    errors = [result.err() for result in results if isinstance(result, Err)]
    assert errors == []


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_serves_its_document(stack: Stack, service: str) -> None:
    response = requests.get(f"{stack.urls[service]}/openapi.json", timeout=5)
    assert response.status_code == 200
    assert response.json() == json.loads(OPENAPI[service].read_text())

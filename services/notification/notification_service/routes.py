"""URL map of the notification service (the contract is ``docs/api.md``)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from shared.web import static_file

from .agents import agent_socket
from .connections import capped_stream
from .customer import cancel_request, claim_request, request_events, request_status
from .keys import CONNECTIONS
from .stats import stats_handler
from .streams import dashboard_socket, event_stream, issue_ticket

__all__ = ["setup_routes"]

STATIC = Path(__file__).parent / "static"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/ws/agent", agent_socket)
    app.router.add_get("/ws/dashboard", dashboard_socket)
    app.router.add_get("/events", event_stream)
    app.router.add_post("/api/tickets", issue_ticket)
    app.router.add_get("/stats", stats_handler)
    app.router.add_get("/api/requests/{session_id}", request_status)
    app.router.add_get("/api/requests/{session_id}/events", capped_stream(CONNECTIONS, request_events))
    app.router.add_delete("/api/requests/{session_id}", cancel_request)
    app.router.add_post("/api/requests/{session_id}/claim", claim_request)
    app.router.add_get("/agent", static_file(STATIC / "agent.html"))
    app.router.add_get("/dashboard", static_file(STATIC / "dashboard.html"))
    app.router.add_get("/openapi.json", static_file(STATIC.parent / "openapi.json"))
    app.router.add_static("/static/", STATIC)

"""``GET /stats``: per-queue numbers for supervisors, fleet-wide (read from Redis, not from this replica)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from aiohttp import web

from shared.accounts import Role
from shared.web import json_response

from .keys import ACCOUNTS, SETTINGS, STORE
from .replies import QueueCounts
from .settings import Settings
from .store import Store

__all__ = ["percentile", "queue_overview", "stats_handler"]


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; ``None`` without data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _agent_counts(agents: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Queue -> agents serving it by status, from ``Store.agents()`` (busy: available with no room for a claim)."""
    counts: dict[str, dict[str, int]] = {}
    for agent in agents:
        status = agent["status"]
        if status == "available" and agent["sessions"] >= agent["capacity"]:
            status = "busy"
        for queue in agent["queues"]:
            counts.setdefault(queue, dict.fromkeys(("available", "busy", "away", "offline"), 0))[status] += 1
    return counts


async def queue_overview(
    store: Store, settings: Settings, agents: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Every known queue: waiting count, longest wait, agents by status (from ``agents`` when given), mode.

    Counted in Redis, one script per desk: reading every agent and every waiting request here every few seconds
    held the event loop for tens of milliseconds once thousands waited (offers waited behind it).
    """
    now = time.time()
    counted = await store.overview()
    by_queue = {q: row.agents for q, row in counted.items()} if agents is None else _agent_counts(agents)
    empty = QueueCounts({}, 0, None, False)
    out = []
    for queue in sorted(set(counted) | {settings.default_queue}):
        row = counted.get(queue, empty)
        out.append(
            {
                "queue": queue,
                "mode": settings.mode(queue).value,
                "waiting": row.waiting,
                "longest_wait_s": round(max(0.0, now - row.oldest_s), 3) if row.oldest_s is not None else 0.0,
                "agents": {"available": 0, "busy": 0, "away": 0, "offline": 0, **by_queue.get(queue, {})},
                "no_agents": row.no_agents,
            }
        )
    return out


async def stats_handler(request: web.Request) -> web.Response:
    await request.app[ACCOUNTS].authenticate_request(request, Role.SUPERVISOR)
    store = request.app[STORE]
    queues = await queue_overview(store, request.app[SETTINGS])
    for row in queues:
        counts, waits = await store.day_stats(row["queue"])
        row["today"] = {
            **{name: counts.get(name, 0) for name in ("offered", "claimed", "timed_out", "abandoned", "escalated")},
            "wait_p50_s": percentile(waits, 50),
            "wait_p90_s": percentile(waits, 90),
            "wait_p99_s": percentile(waits, 99),
            "wait_mean_s": round(statistics.fmean(waits), 3) if waits else None,
        }
    since = f"00:00 {request.app[SETTINGS].stats_timezone}"
    return json_response({"at": time.time(), "day": store.today(), "since": since, "queues": queues})

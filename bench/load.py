"""Closed-loop HTTP load with ``wrk`` (C, epoll): one wrk thread saturates a Python server many times over, so on a
2-core machine the load generator is not what we measure.

The request body and headers go in a generated Lua script, whose ``done`` hook prints exact percentiles.
``make bench`` installs wrk with apt when it is missing (Debian package ``wrk``).
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "run_wrk"]

_LUA = """
wrk.method = {method}
wrk.body = {body}
{headers}
{request}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %.1f %.1f %.1f\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    duration_s: float
    errors: int
    """Socket errors, timeouts and non-2xx/3xx answers."""
    p50_ms: float
    p99_ms: float
    mean_ms: float
    server_cpu_us: float | None = None
    """CPU time of the server per request (user + system), when the harness knows the server's process."""

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def _lua_string(value: str | bytes) -> str:
    text = value.decode() if isinstance(value, bytes) else value
    # Lua long brackets take the text verbatim; pick a level that cannot close early.
    level = "=" * next(n for n in range(10) if f"]{'=' * n}]" not in text)
    return f"[{level}[{text}]{level}]"


def _wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise FileNotFoundError("wrk not found: apt-get install -y wrk (make bench does this when run as root)")
    return found


async def run_wrk(
    url: str,
    *,
    work_dir: Path,
    body: bytes,
    method: str,
    headers: dict[str, str],
    connections: int,
    duration_s: float,
    request_lua: str = "",
) -> LoadResult:
    """Run one wrk thread with ``connections`` keep-alive connections for ``duration_s`` seconds.

    ``request_lua`` may define wrk's ``request`` function, to send a different body with every request.
    """
    header_lines = "\n".join(f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items())
    script = work_dir / f"wrk-{uuid.uuid4().hex}.lua"  # unique: loads may run side by side
    script.write_text(
        _LUA.format(method=_lua_string(method), body=_lua_string(body), headers=header_lines, request=request_lua)
    )
    process = await asyncio.create_subprocess_exec(
        _wrk_binary(),
        "-t1",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}): {text[-1000:]}")
    requests, duration_us, socket_errors, status_errors, p50_us, p99_us, mean_us = line.split()[1:]
    return LoadResult(
        requests=int(requests),
        duration_s=int(duration_us) / 1e6,
        errors=int(socket_errors) + int(status_errors),
        p50_ms=float(p50_us) / 1000,
        p99_ms=float(p99_us) / 1000,
        mean_ms=float(mean_us) / 1000,
    )

"""The suite interface (``Result``, ``BenchEnv``), suite discovery and the results table."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import os
import pkgutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from devstack.servers import free_port

from .load import LoadResult, run_wrk

__all__ = [
    "BenchEnv",
    "Result",
    "Suite",
    "at_least",
    "at_most",
    "discover",
    "format_table",
    "other_programs_cpu_s",
    "processes",
]

Suite = Callable[["BenchEnv"], Awaitable[list["Result"]]]

# Development credentials for services under benchmark; they never reach Zoom.
BENCH_SDK_KEY = "bench-sdk-key"
BENCH_SDK_SECRET = "bench-sdk-secret-0123456789abcdef"


@dataclass(frozen=True)
class Result:
    """One row of the table; ``ok`` is ``None`` for informational figures without a target."""

    metric: str
    value: float
    unit: str = ""
    target: str = ""
    ok: bool | None = None


def at_least(metric: str, value: float, minimum: float, *, unit: str = "") -> Result:
    return Result(metric, value, unit, f">= {minimum:g}", value >= minimum)


def at_most(metric: str, value: float, maximum: float, *, unit: str = "") -> Result:
    return Result(metric, value, unit, f"< {maximum:g}", value < maximum)


@dataclass
class BenchEnv:
    redis_url: str
    nats_url: str
    work_dir: Path
    duration_s: float
    quick: bool = False
    """``BENCH_QUICK=1``: fewer repeated runs and shorter measurements, for a first look."""
    processes: ExitStack = field(default_factory=ExitStack)
    pids: dict[str, int] = field(default_factory=dict)
    """Process id of each started process, by its URL."""

    @property
    def runs(self) -> int:
        """How many times a suite repeats a measurement whose worst run matters (latency tails)."""
        return 2 if self.quick else 5

    def service_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a service subprocess: this run's Redis/NATS, dev credentials, warnings-only JSON logs."""
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "NATS_URL": self.nats_url,
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "true",
            "ZOOM_SDK_KEY": BENCH_SDK_KEY,
            "ZOOM_SDK_SECRET": BENCH_SDK_SECRET,
            "ZOOM_SIMULATED": "true",
            "PYTHONOPTIMIZE": "",
        }
        env.update(extra or {})
        return env

    async def start_process(
        self, name: str, args: list[str], env: dict[str, str], *, port: int, ready_path: str = "/readyz"
    ) -> str:
        """Start ``args`` (logging to ``work_dir/<name>.log``), wait until ``ready_path`` answers 200, return its URL.

        The process is stopped when the suite ends.
        """
        log_path = self.work_dir / f"{name}.log"
        process = _spawn(args, env, log_path)
        self.processes.callback(_stop, process)
        url = f"http://127.0.0.1:{port}"
        self.pids[url] = process.pid
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if process.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"{name} exited with {process.returncode}: {tail}")
                try:
                    async with http.get(url + ready_path) as response:
                        if response.status == 200:
                            return url
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)  # polling a child process's port; there is no event to await
        raise TimeoutError(f"{name} not ready at {url}{ready_path}")

    async def start_service(self, package: str, extra_env: dict[str, str] | None = None) -> str:
        """Start ``python -m <package>`` (one of our services) on a free port; returns its base URL."""
        port = free_port()
        prefix = {"token_service": "TOKEN_", "session_registry": "REGISTRY_", "notification_service": "NOTIFY_"}
        env = self.service_env({f"{prefix.get(package, '')}PORT": str(port), **(extra_env or {})})
        return await self.start_process(package, [sys.executable, "-m", package], env, port=port)

    def cpu_seconds(self, url: str) -> float:
        """CPU time (user + system) the process serving ``url`` has used so far.

        CPU per request does not depend on what else runs on the machine, unlike throughput, so suites can print
        it next to throughput as the steadier figure.
        """
        fields = Path(f"/proc/{self.pids[url]}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def wrk(
        self,
        url: str,
        *,
        body: bytes = b"",
        method: str = "POST",
        headers: dict[str, str] | None = None,
        connections: int = 16,
        duration_s: float | None = None,
    ) -> LoadResult:
        """Closed-loop HTTP load with ``wrk`` (see ``bench/load.py``).

        When ``url`` belongs to a process started here, the result carries that process's CPU time per request.
        """
        server = next((base for base in self.pids if url.startswith(base)), None)
        cpu_before = self.cpu_seconds(server) if server else 0.0
        result = await run_wrk(
            url,
            work_dir=self.work_dir,
            body=body,
            method=method,
            headers=headers or {},
            connections=connections,
            duration_s=duration_s or self.duration_s,
        )
        if server and result.requests:
            cpu_us = (self.cpu_seconds(server) - cpu_before) / result.requests * 1e6
            result = dataclasses.replace(result, server_cpu_us=cpu_us)
        return result


Processes = dict[int, tuple[int, int]]
"""Each live process: its parent and its CPU ticks, its own and those of its children it has reaped."""


def processes() -> Processes:
    found: Processes = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            found[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    return found


def other_programs_cpu_s(before: Processes, after: Processes) -> float:
    """CPU seconds that processes other than this one and its descendants (the services, Redis, NATS and wrk a
    suite started) took between two readings of ``processes()``.

    A program that started and exited in between is counted through its parent's reaped children: on this machine
    RabbitMQ starts a short-lived Erlang VM every 60 s (its epmd check, ~0.1 s of CPU within a few hundred ms),
    which is enough to delay every process on two cores for that long.
    """
    ours, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        ours.add(pid)
        todo += [child for child, (parent, _) in after.items() if parent == pid]
    ticks = sum(cpu - before.get(pid, (0, 0))[1] for pid, (_, cpu) in after.items() if pid not in ours)
    return ticks / os.sysconf("SC_CLK_TCK")


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def discover() -> dict[str, Suite]:
    """Every ``bench/bench_<name>.py`` module's ``run``, by ``<name>``."""
    package = importlib.import_module("bench")
    suites: dict[str, Suite] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("bench_"):
            module = importlib.import_module(f"bench.{info.name}")
            suites[info.name.removeprefix("bench_")] = module.run
    return suites


def _format_value(value: float) -> str:
    if value == int(value) and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def format_table(rows: list[tuple[str, Result]]) -> str:
    header = ("suite", "metric", "value", "target", "ok")
    lines = [
        (
            suite,
            r.metric,
            f"{_format_value(r.value)} {r.unit}".strip(),
            f"{r.target} {r.unit}".strip() if r.target else "",
            {True: "yes", False: "NO", None: ""}[r.ok],
        )
        for suite, r in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)

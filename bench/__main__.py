"""``python -m bench [suite ...] [--duration S]``: run the suites against fresh Redis and NATS, print one table."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from redis.asyncio import Redis

from devstack.servers import start_nats, start_redis

from .harness import BenchEnv, Result, discover, format_table

LOGS = Path(".run/bench-logs")


async def _run(
    names: list[str], duration_s: float, work_dir: Path, quick: bool
) -> tuple[list[tuple[str, Result]], list[str]]:
    suites = discover()
    unknown = [n for n in names if n not in suites]
    if unknown:
        raise SystemExit(f"unknown suite(s) {', '.join(unknown)}; available: {', '.join(sorted(suites))}")
    redis_server = start_redis(work_dir / "redis")
    rows: list[tuple[str, Result]] = []
    failed: list[str] = []
    try:
        for name in names or sorted(suites):
            # Every suite starts from nothing: an empty Redis and a new NATS server with no stream, so that none
            # measures against the previous suite's stream (tens of MB after the customer suite) or while its files
            # are written back; they are deleted when the suite ends.
            redis = Redis.from_url(redis_server.url)
            await redis.flushdb()
            await redis.aclose()
            nats_dir = work_dir / f"nats-{name}"
            nats_server = start_nats(nats_dir)
            env = BenchEnv(redis_server.url, nats_server.url, work_dir, duration_s, quick)
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                with env.processes:
                    rows += [(name, result) for result in await suites[name](env)]
                # The machine is shared: a figure is only as good as the quiet it was measured in.
                rows.append((name, Result("load average (1 min) after the suite", os.getloadavg()[0])))
            except Exception:
                traceback.print_exc()
                failed.append(name)
            finally:
                nats_server.stop()
                shutil.rmtree(nats_dir, ignore_errors=True)
    finally:
        redis_server.stop()
    return rows, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suites", nargs="*", help="suites to run (default: all)")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 5; 2 with BENCH_QUICK=1)")
    args = parser.parse_args(argv)
    quick = os.environ.get("BENCH_QUICK") == "1"
    duration = args.duration or (2.0 if quick else 5.0)
    with tempfile.TemporaryDirectory(prefix="cobrowse-bench-") as tmp:
        rows, failed = asyncio.run(_run(args.suites, duration, Path(tmp), quick))
        # The services' logs (warnings and errors) outlive the run, for a figure that needs explaining.
        shutil.rmtree(LOGS, ignore_errors=True)
        LOGS.mkdir(parents=True)
        for log in Path(tmp).glob("*.log"):
            shutil.copy(log, LOGS / log.name)
        print(f"service logs: {LOGS}", file=sys.stderr)
    print(format_table(rows))
    if failed:
        print(f"suites that failed to run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

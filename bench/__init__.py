"""Benchmarks: ``python -m bench [suite ...]`` (``make bench``) prints one table of every suite's figures.

The harness starts its own Redis and NATS on free loopback ports (``devstack.servers``), runs each suite with a
fresh Redis database, stops every process a suite started, and prints ``suite | metric | value | target | ok``,
with the machine's load average after each suite (the figures are only as good as the quiet they had). The
services' logs of the last run stay in ``.run/bench-logs``. ``BENCH_QUICK=1`` repeats less and measures for 2 s
instead of 5 (a first look; the figures for the README come from a full run, ~7 minutes).

Suites (``python -m bench <name> ...``; all by default):

- ``beacons``: registry ingest, single-event beacons and batches of 10, with and without publishing.
- ``customer``: 2,000 concurrent customer starts (errors, p99); starts/s over customer tokens/s.
- ``footprint``: Redis bytes per 10-minute session; the PIN hit chance the guessing budgets allow.
- ``latency``: beacon -> offer at 200/s with 1 and 2 registries, median of 5 runs and the worst, split by hop.
- ``notify``: the notification service alone: offer latency, dashboard fan-out, memory per socket.
- ``page``: headless Chromium on the demo page, the SDK's ``pincode_updated`` -> offer, 200 customers.
- ``scale``: registry CPU per beacon over a bare aiohttp handler's; events/s published with 1 and 2 registries.
- ``token``: token issuance against a signing-only ceiling.

Adding a suite: create ``bench/bench_<name>.py`` with one coroutine::

    from bench.harness import BenchEnv, Result, at_least, at_most

    async def run(env: BenchEnv) -> list[Result]:
        url = await env.start_service("session_registry", {"REGISTRY_...": "..."})   # stopped after the suite
        load = await env.wrk(url + "/beacons", body=b"...", connections=16)         # see bench/load.py
        return [
            at_least("throughput", load.rps, 5000, unit="req/s"),
            at_most("p99", load.p99_ms, 5.0, unit="ms"),
            Result("errors", load.errors),                                          # informational row
        ]

It is found by its module name (``bench_*``) and selected by ``<name>`` on the command line. ``env`` also
carries ``redis_url``, ``nats_url``, ``work_dir``, ``duration_s`` (per measurement; ``--duration``),
``service_env()`` (the environment a service subprocess gets: URLs, dev credentials, quiet logs),
``start_process()`` for any other server, and ``cpu_seconds(url)``. A ``LoadResult`` of a server the suite started
carries ``server_cpu_us`` (CPU per request), which, unlike throughput, does not move with the machine's other load.
"""

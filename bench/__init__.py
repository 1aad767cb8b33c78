"""Benchmarks: ``python -m bench [suite ...]`` (``make bench``) prints one table of every suite's figures.

The harness starts its own Redis and NATS on free loopback ports (``devstack.servers``), runs each suite with a
fresh Redis database, stops every process a suite started, and prints ``suite | metric | value | target | ok``.

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

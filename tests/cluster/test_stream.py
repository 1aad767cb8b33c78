"""The ``COBROWSE`` stream on a single server and on a 3-node cluster: created with the configured replicas and
limits, and never lowered by a service that starts with smaller settings."""

from __future__ import annotations

import asyncio

import nats

from shared.messaging import STREAM, ensure_streams

from .conftest import NatsCluster


async def test_existing_limits_are_never_lowered(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, max_bytes=10_000_000, max_age_s=3600)
    # An operator gives the stream more room; a service restarting with its defaults must keep that.
    info = await js.stream_info(STREAM)
    await js.update_stream(type(info.config)(**{**info.config.__dict__, "max_bytes": 50_000_000, "max_age": 7200.0}))
    await ensure_streams(js, max_bytes=10_000_000, max_age_s=3600)
    config = (await js.stream_info(STREAM)).config
    assert config.max_bytes == 50_000_000
    assert config.max_age == 7200.0
    # A larger setting raises it; unlimited (-1) stays unlimited.
    await ensure_streams(js, max_bytes=-1, max_age_s=3600)
    assert (await js.stream_info(STREAM)).config.max_bytes == -1
    await nc.close()


async def test_replicated_stream_survives_its_leader(nats_cluster: NatsCluster) -> None:
    nc = await nats.connect(nats_cluster.url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    # JetStream needs a meta leader before it takes a stream.
    async with asyncio.timeout(20):
        while True:
            try:
                await ensure_streams(js, replicas=3)
                break
            except Exception:  # noqa: BLE001 - "JetStream not ready" in its several shapes
                await asyncio.sleep(0.2)
    # A service starting later with replicas=1 keeps the operator's R3.
    await ensure_streams(js, replicas=1)
    info = await js.stream_info(STREAM)
    assert info.config.num_replicas == 3
    await js.publish("cobrowse.session.s1.created", b"{}")

    leader = info.cluster.leader if info.cluster else None
    index = next(i for i in range(3) if f"n{i}" == leader)
    nats_cluster.kill(index)
    async with asyncio.timeout(20):
        while True:
            try:
                await js.publish("cobrowse.session.s1.pin_assigned", b"{}", timeout=1)
                break
            except Exception:  # noqa: BLE001 - timeouts and "no responders" while a new leader is elected
                await asyncio.sleep(0.2)
    info = await js.stream_info(STREAM)
    assert info.state.messages == 2
    assert info.cluster is not None and info.cluster.leader != leader
    await nc.close()

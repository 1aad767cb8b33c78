"""What ``/readyz`` asks Redis: a real script, on every master, so readiness never says yes while scripts fail.

A ping proves little: a Redis Cluster answers it while every script of ours fails (``MOVED``, a key of another slot),
and a server that refuses Lua answers it too. The probe runs a script of ``shared.scripts`` (the same ``EVALSHA``
path as every request) on one key of each master's slots: one key on a single Redis or through sentinels; on a
cluster, a key whose hash tag falls in the first slot each master serves, by the client's slot map. The cluster
must also serve all 16,384 slots.

Failure model: any error or a missing slot is "redis down" (``/readyz`` answers 503). A master that died is down
until its replica is promoted and the client's slot map follows (it refreshes on the connection error itself); a
master that died without a replica keeps the cluster down (``CLUSTERDOWN`` from every node once they agree it failed).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Self

from redis.asyncio.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ClusterDownError

from .redis_conn import RedisClient
from .scripts import Keyspace, Script, ScriptRunner

__all__ = ["READY", "ReadyProbe", "RedisProbe"]

READY = Keyspace("readyz:", "{}", probe="probe")

_READY_PROBE = "return { exists = redis.call('EXISTS', K_PROBE) }"


@dataclass(frozen=True)
class ReadyProbe:
    """The probe script's answer (the probe key never exists: reading it is the point)."""

    exists: int

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(exists=int(raw["exists"]))


@lru_cache(maxsize=1024)
def tag_for_slot(slot: int) -> str:
    """The smallest number whose decimal text hashes to ``slot`` (about 16,000 CRC16s of C, once per slot)."""
    n = 0
    while key_slot(str(n).encode()) != slot:
        n += 1
    return str(n)


def probe_tags(redis: RedisClient) -> list[str]:
    """A hash tag per master: on a cluster one in the first slot of each master, else any."""
    if not isinstance(redis, RedisCluster):
        return ["0"]
    slots = redis.nodes_manager.slots_cache  # slot -> [primary, replicas...]
    if len(slots) < REDIS_CLUSTER_HASH_SLOTS:
        raise ClusterDownError(f"{REDIS_CLUSTER_HASH_SLOTS - len(slots)} slots have no master")
    first: dict[str, int] = {}
    for slot in range(REDIS_CLUSTER_HASH_SLOTS):
        first.setdefault(slots[slot][0].name, slot)
    return [tag_for_slot(slot) for slot in first.values()]


class RedisProbe:
    """Runs the probe script on every master of ``redis`` (see the module docstring); raises if any fails."""

    def __init__(self) -> None:
        self._redis: RedisClient | None = None
        self._script: Script[ReadyProbe] | None = None

    async def __call__(self, redis: RedisClient) -> None:
        if self._script is None or self._redis is not redis:
            self._redis = redis
            self._script = ScriptRunner(redis).script("ready_probe", _READY_PROBE, ReadyProbe, keyspace=READY)
        script = self._script
        await asyncio.gather(*(script(READY.base(tag)) for tag in probe_tags(redis)))

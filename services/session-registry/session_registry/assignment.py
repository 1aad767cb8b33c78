"""Which partitions this replica publishes: spread over the live replicas, one publisher per partition.

Each replica announces itself with a heartbeat (``replicas.lua``: a member of ``reg:{replicas}:members`` scored by
when it lapses, ``outbox_lease_s`` after the last beat) and takes the partitions that rendezvous-hash to it among
the live members; every replica computes the same assignment from the same member list. The partition's lease
(``reg:{p<n>}:outbox:lease``, ``shared.lease``) still guarantees one publisher per partition while views of the
members differ (a replica joining or leaving): a partition goes to its new owner only once the old one released
it or its lease lapsed.

Failure model: a replica that stops cleanly leaves the member set and releases its leases, so the others take its
partitions at their next beat (a third of the lease). One that dies stops beating: after at most
``outbox_lease_s`` it drops out of the member set and its leases lapse, so its partitions are taken over within
about ``1.4 × outbox_lease_s``. A replica that loses Redis stops publishing, as it cannot renew.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

from redis.exceptions import RedisError

from shared.lease import Lease
from shared.redis_conn import RedisClient
from shared.scripts import ScriptRunner

from .keyspaces import Keyspaces
from .replies import ReplicasResult, load_script

__all__ = ["Assignment", "owner"]


def owner(partition: int, members: tuple[str, ...]) -> str:
    """The member that rendezvous-hashes highest for ``partition`` (a member leaving moves only its partitions)."""
    return max(members, key=lambda m: hashlib.blake2b(f"{m}|{partition}".encode(), digest_size=8).digest())


class Assignment:
    def __init__(self, redis: RedisClient, runner: ScriptRunner, keys: Keyspaces, lease_s: float) -> None:
        self.name = uuid.uuid4().hex
        self._redis = redis
        self._keys = keys
        self._lease_s = lease_s
        self._beat = load_script(runner, "replicas", ReplicasResult, keyspace=keys.replicas, constants={})
        self._base = keys.replicas.base()
        self._leases = [Lease(redis, keys.partition.key(base, "lease"), lease_s) for base in keys.bases()]
        for lease in self._leases:
            lease.owner = self.name  # a lease names the replica holding it (operators, tests)
        self._due = 0.0
        self.held: frozenset[int] = frozenset()
        """The partitions whose lease this replica holds (publishes)."""

    async def refresh(self) -> frozenset[int]:
        """Beat, then take or renew the leases of this replica's partitions and release the others (a third of a
        lease apart; in between it answers what it holds)."""
        now = time.monotonic()
        if now < self._due:
            return self.held
        beat = await self._beat(self._base, self.name, int(self._lease_s * 1000))
        members = beat.members if self.name in beat.members else (*beat.members, self.name)
        mine = [p for p in range(self._keys.partitions) if owner(p, members) == self.name]
        lost = [p for p in self.held if p not in mine]
        held = await asyncio.gather(*(self._leases[p].hold() for p in mine))
        await asyncio.gather(*(self._leases[p].release() for p in lost))
        self.held = frozenset(p for p, ok in zip(mine, held, strict=True) if ok)
        # A partition still leased by its previous owner is asked for again soon, not a whole third of a lease later.
        self._due = now + self._lease_s / (3 if len(self.held) == len(mine) else 10)
        return self.held

    async def leave(self) -> None:
        """Release every lease and leave the member set at once (at shutdown); if Redis is gone both lapse."""
        self._due = float("inf")
        held, self.held = self.held, frozenset()
        await asyncio.gather(*(self._leases[p].release() for p in held))
        try:
            await self._redis.zrem(self._keys.replicas.key(self._base, "members"), self.name)
        except RedisError:  # Redis is gone: the heartbeat lapses on its own
            pass

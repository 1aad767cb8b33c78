from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from shared.lease import Lease


async def test_one_holder_at_a_time_and_hand_over(redis: Redis) -> None:
    leases = [Lease(redis, "test:lease", ttl_s=5) for _ in range(20)]
    held = await asyncio.gather(*(lease.hold() for lease in leases))
    assert held.count(True) == 1
    holder = leases[held.index(True)]
    others = [lease for lease in leases if lease is not holder]
    assert not any(await asyncio.gather(*(lease.hold() for lease in others)))
    assert not await others[0].release()  # a non-holder never deletes the holder's lease
    assert await redis.get("test:lease") == holder.owner
    assert await holder.release()
    assert await others[0].hold()


async def test_an_expired_lease_moves_on(redis: Redis) -> None:
    first, second = Lease(redis, "test:lease", ttl_s=0.2), Lease(redis, "test:lease", ttl_s=0.2)
    assert await first.hold()
    assert not await second.hold()
    await redis.delete("test:lease")  # the holder died, stopped renewing, and its lease expired
    assert await second.hold()
    first._renew_at = 0.0  # its next renewal asks Redis, and finds the lease gone to another
    assert not await first.hold()

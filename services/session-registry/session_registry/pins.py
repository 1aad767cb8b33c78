"""The PIN index: each PIN in the slot of its miss bucket, claimed and released in steps of their own.

A PIN is claimed atomically in its bucket's slot (``pin_claim.lua``: free, or already this session's) *before*
the partition script that adopts it learns the outcome; the PINs a session gives up (its old PIN, its custom PIN,
every PIN when it ends) are released in a step *after* (``pin_settle.lua``). A PIN key records the newest
(ts, seq) of the events that claimed it, and a release names the event that gave it up, so a release never drops
a PIN that a newer claim (a ``pincode_updated`` still on its way) holds again.

Failure model: the steps are ordered so a crash between two of them can only leave a PIN *reserved* for a session
that does not use it, until the key's TTL (the session TTL) or the session's end releases it. It can never leave
two live sessions owning one PIN (the key has one owner, set only when free) nor a session showing a PIN another
session owns (a session adopts a PIN only after its claim succeeded, and a release deletes only the releasing
session's own claim, no newer than the event that gave it up). A lookup checks both sides (the key, then the
session's own PIN), so a reserved PIN answers ``pin_not_ready``, never another session.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping
from typing import cast

from shared.scripts import ScriptRunner

from .keyspaces import Keyspaces
from .replies import PinClaimResult, PinLookupResult, PinMissResult, PinRelease, PinSettleResult, load_script

__all__ = ["PinIndex"]


class PinIndex:
    def __init__(self, runner: ScriptRunner, keys: Keyspaces, constants: Mapping[str, int | str]) -> None:
        self._redis = runner.redis
        self._keys = keys

        script = functools.partial(load_script, runner, keyspace=keys.pins, constants=constants)
        self._claim = script("pin_claim", PinClaimResult)
        self._settle = script("pin_settle", PinSettleResult)
        self._lookup = script("pin_lookup", PinLookupResult)
        self._miss = script("pin_miss", PinMissResult)

    async def claim(self, session_id: str, stamps: Mapping[str, tuple[float, float]]) -> dict[str, bool]:
        """Claim each PIN for ``session_id`` at its event's (ts, seq); whether each is the session's now."""
        pins = list(stamps)
        results = await asyncio.gather(
            *(self._claim(self._keys.bucket(pin), pin, session_id, *map(_int, stamps[pin])) for pin in pins)
        )
        return {pin: result.claimed for pin, result in zip(pins, results, strict=True)}

    async def settle(self, releases: Iterable[PinRelease], keep: tuple[str, str] | None = None) -> None:
        """Release what partition scripts gave up (one per PIN: a final release wins, else the newest event)."""
        chosen: dict[tuple[str, str], PinRelease] = {}
        for release in releases:
            key = (release.session_id, release.pin)
            known = chosen.get(key)
            if (
                known is None
                or release.final
                or (not known.final and (release.ts, release.seq) > (known.ts, known.seq))
            ):
                chosen[key] = release
        calls = [
            self._settle(
                self._keys.bucket(r.pin),
                r.session_id,
                r.pin,
                "final" if r.final else "release",
                _int(r.ts),
                _int(r.seq),
            )
            for r in chosen.values()
        ]
        if keep is not None and keep not in chosen:
            session_id, pin = keep
            calls.append(self._settle(self._keys.bucket(pin), session_id, pin, "keep", 0, 0))
        await asyncio.gather(*calls)

    async def lookup(self, pin: str) -> PinLookupResult:
        return await self._lookup(self._keys.bucket(pin), pin)

    async def miss(self, pin: str) -> PinMissResult:
        return await self._miss(self._keys.bucket(pin), pin)

    async def owner(self, pin: str) -> str | None:
        return cast(str | None, await self._redis.hget(self._keys.pin(pin), "sid"))


def _int(value: float) -> int:
    return int(value)

"""Every Redis key of the registry, declared once: which keys share a slot, and how a session finds its slot.

Prefix ``REGISTRY_KEY_PREFIX`` (default ``reg:``); ``{...}`` is the hash tag that decides the slot::

    reg:{p<n>}:s:<sid>          hash   a session's facts; once ended, its summary      TTL: live / ended retention
    reg:{p<n>}:s:<sid>:h        list   its history (accepted and ignored entries)        same TTL
    reg:{p<n>}:timers           zset   "<sid>|<kind>" by due time (ms)                   members leave when fired
    reg:{p<n>}:index            zset   session ids by creation time (ms), for listings   pruned past TTL + retention
    reg:{p<n>}:outbox           stream SessionEvents for JetStream (s=subject i=msg id d=json); leave when published
    reg:{p<n>}:outbox:lease     str    the replica publishing this partition's outbox    REGISTRY_OUTBOX_LEASE_S
    reg:{pin:<bucket>}:pin:<PIN> hash  {sid, ts, seq}: the session owning a PIN, and the
                                       newest (ts, seq) of a claim by it                 session TTL
    reg:{pin:<bucket>}:live     set    the bucket's PINs                                 session TTL; members leave
    reg:{pin:<bucket>}:misses   str    failed lookups in the bucket                      pin_miss_window_s
    reg:{idem:<key>}:sid        str    the session id a create with this key is for      session TTL
    reg:{zoom:<zoom id>}:sid    str    our session id for Zoom's session id (webhooks)   session TTL
    reg:{zoomq}:...                    webhooks waiting for a Zoom REST lookup (correlation.py), one slot
    reg:{replicas}:members      zset   live registry replicas by heartbeat expiry (ms)   members leave when stale

A session's partition is ``int(sid[:8], 16) % REGISTRY_PARTITIONS`` (session ids are 32 hex digits), so every key
of one session, and the partition's outbox, timers and index, live in one slot: a change to a session is one
script there. A PIN's bucket is the PIN without its last ``pin_bucket_drop`` characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.scripts import Keyspace

__all__ = ["Keyspaces"]


@dataclass(frozen=True)
class Keyspaces:
    partition: Keyspace
    pins: Keyspace
    idem: Keyspace
    zoom: Keyspace
    zoom_pending: Keyspace
    replicas: Keyspace
    partitions: int
    pin_bucket_drop: int

    @classmethod
    def build(cls, prefix: str, *, partitions: int, pin_bucket_drop: int) -> Keyspaces:
        return cls(
            partition=Keyspace(
                prefix,
                "p{}",
                session="s:{}",
                history="s:{}:h",
                timers="timers",
                index="index",
                outbox="outbox",
                lease="outbox:lease",
            ),
            pins=Keyspace(prefix, "pin:{}", pin="pin:{}", live="live", misses="misses"),
            idem=Keyspace(prefix, "idem:{}", sid="sid"),
            zoom=Keyspace(prefix, "zoom:{}", sid="sid"),
            zoom_pending=Keyspace(prefix, "zoomq", pending="pending", queue="q:{}", attempts="n:{}", pin="pin:{}"),
            replicas=Keyspace(prefix, "replicas", members="members"),
            partitions=partitions,
            pin_bucket_drop=pin_bucket_drop,
        )

    def partition_of(self, session_id: str) -> int:
        try:
            return int(session_id[:8], 16) % self.partitions
        except ValueError:
            return 0  # not one of our ids (a client's guess): its lookup finds nothing, in some slot

    def part(self, session_id: str) -> str:
        """``KEYS[1]`` of every script about this session: its partition's base."""
        return self.partition.base(self.partition_of(session_id))

    def bases(self) -> list[str]:
        return [self.partition.base(p) for p in range(self.partitions)]

    def index_keys(self) -> list[str]:
        """Every partition's creation-time index: together, every session Redis holds."""
        return [self.partition.key(base, "index") for base in self.bases()]

    def session(self, session_id: str) -> str:
        return self.partition.key(self.part(session_id), "session", session_id)

    def history(self, session_id: str) -> str:
        return self.partition.key(self.part(session_id), "history", session_id)

    def bucket(self, pin: str) -> str:
        """``KEYS[1]`` of the PIN scripts: the base of the PIN's miss bucket."""
        return self.pins.base(pin[: max(0, len(pin) - self.pin_bucket_drop)])

    def pin(self, pin: str) -> str:
        return self.pins.key(self.bucket(pin), "pin", pin)

    def idem_key(self, key: str) -> str:
        return self.idem.key(self.idem.base(key), "sid")

    def zoom_key(self, zoom_session_id: str) -> str:
        return self.zoom.key(self.zoom.base(zoom_session_id), "sid")

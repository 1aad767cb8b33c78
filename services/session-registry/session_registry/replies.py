"""The registry's Lua scripts (``lua/<name>.lua``, loaded by :func:`load_script`) and their typed replies, one per
script, each named after it (``apply`` → ``ApplyResult``).

Each reply has ``decode(dict)``, which ``shared.scripts`` calls with the JSON object the script answered. An empty
Lua table arrives as ``{}``, so list fields accept that too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import BaseModel, Field, field_validator

from shared.messaging import SessionView
from shared.scripts import Keyspace, Reply, Script, ScriptRunner

__all__ = [
    "ApplyResult",
    "CreateResult",
    "FireResult",
    "IdemClaimResult",
    "PinClaimResult",
    "PinLookupResult",
    "PinMissResult",
    "PinRelease",
    "PinSettleResult",
    "ReplicasResult",
    "ResolveResult",
    "RetireResult",
    "ViewsResult",
    "load_script",
]

LUA = Path(__file__).parent / "lua"
R = TypeVar("R", bound=Reply)


def load_script(
    runner: ScriptRunner,
    name: str,
    reply: type[R],
    *,
    keyspace: Keyspace,
    constants: Mapping[str, int | str],
    library: str = "",
) -> Script[R]:
    """``lua/<name>.lua`` as a script of ``keyspace``'s slots, answering ``reply``."""
    body = (LUA / f"{name}.lua").read_text()
    return runner.script(name, body, reply, keyspace=keyspace, constants=constants, library=library)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []  # cjson answers an empty table as {}


@dataclass(frozen=True, slots=True)
class PinRelease:
    """A PIN a session gave up: released if it still owns it and no claim newer than (ts, seq) renewed it."""

    session_id: str
    pin: str
    ts: float = 0
    seq: float = 0
    final: bool = False
    """The session ended (or is gone): released whatever claimed it since."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(raw["session_id"], raw["pin"], raw.get("ts", 0), raw.get("seq", 0), bool(raw.get("final")))


def _releases(raw: Any) -> tuple[PinRelease, ...]:
    return tuple(PinRelease.decode(item) for item in _list(raw))


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What ``apply.lua`` did with a batch (a plain dataclass: it is built on every beacon)."""

    accepted: int
    duplicates: int
    ignored: int
    state: str
    release: tuple[PinRelease, ...] = ()
    """PINs for the PIN step after the apply to release (see ``store.py``)."""
    keep: str = ""
    """The session's PIN, when its lifetime was renewed: the PIN step renews the PIN's too."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        if "error" in raw:
            return cls(0, 0, 0, "")  # no such session ("" state); the store answers NotFound
        release = _releases(raw["release"]) if "release" in raw else ()
        return cls(raw["accepted"], raw["duplicates"], raw["ignored"], raw["state"], release, raw.get("keep", ""))

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict, which copies field by field recursively: ~7 µs of a beacon's ~200.
        return {"accepted": self.accepted, "duplicates": self.duplicates, "ignored": self.ignored, "state": self.state}


class CreateResult(BaseModel):
    """What ``create.lua`` answered: the session, ``existing`` when it was there already (an idempotent retry)."""

    session: SessionView
    existing: bool = False

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls.model_validate(raw)


class ViewsResult(BaseModel):
    """``views.lua``: the sessions found, in the order asked (unknown ids left out)."""

    sessions: list[SessionView] = Field(default_factory=list)

    _empty = field_validator("sessions", mode="before")(_list)

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls.model_validate(raw)


class ResolveResult(BaseModel):
    """``resolve.lua`` (the partition step of a PIN lookup): the session, or why not (``gone``: counts as a miss)."""

    session: SessionView | None = None
    error: str | None = None
    misses: int = 0
    retired: bool = False
    """This lookup retired the PIN (it wrote an event to the outbox)."""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls.model_validate(raw)


@dataclass(frozen=True, slots=True)
class IdemClaimResult:
    """``idem_claim.lua``: the session id an idempotency key names, ``fresh`` when this call claimed the key."""

    session_id: str
    fresh: bool

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(str(raw["session_id"]), bool(raw["fresh"]))


@dataclass(frozen=True, slots=True)
class RetireResult:
    """``retire.lua``: whether the session's PIN was retired now."""

    retired: bool

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(bool(raw["retired"]))


@dataclass(frozen=True, slots=True)
class FireResult:
    """``fire.lua``: timers fired, timers looked at, PINs of the sessions it ended."""

    fired: int
    looked_at: int
    release: tuple[PinRelease, ...] = ()

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(raw["fired"], raw["looked_at"], _releases(raw.get("release")))


@dataclass(frozen=True, slots=True)
class PinClaimResult:
    """``pin_claim.lua``: the PIN is this session's now (free, or already its own), or ``owner``'s."""

    claimed: bool
    owner: str = ""

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(bool(raw["claimed"]), raw.get("owner", ""))


@dataclass(frozen=True, slots=True)
class PinSettleResult:
    """``pin_settle.lua``: whether the PIN was released (or, for a renewal, renewed)."""

    done: bool

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(bool(raw["done"]))


@dataclass(frozen=True, slots=True)
class PinLookupResult:
    """``pin_lookup.lua``: the session owning the PIN (``""``: none) and whether its bucket is hot."""

    session_id: str
    hot: bool

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(raw.get("session_id", ""), bool(raw["hot"]))


@dataclass(frozen=True, slots=True)
class PinOwner:
    pin: str
    session_id: str


@dataclass(frozen=True, slots=True)
class PinMissResult:
    """``pin_miss.lua``: the bucket's misses in the window, and its owned PINs once it is hot (to retire)."""

    misses: int
    owners: tuple[PinOwner, ...]

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        owners = tuple(PinOwner(o["pin"], o["session_id"]) for o in _list(raw.get("owners")))
        return cls(raw["misses"], owners)


@dataclass(frozen=True, slots=True)
class ReplicasResult:
    """``replicas.lua``: the replicas whose heartbeat is live, this one included."""

    members: tuple[str, ...]

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> Self:
        return cls(tuple(_list(raw["members"])))

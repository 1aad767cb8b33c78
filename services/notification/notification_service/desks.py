"""Desks: groups of queues and the agents serving them, each in one Redis Cluster slot.

A desk's keys all carry its hash tag (``notify:{d:<desk>}:...``), so one queue's dispatch, claims and offers are
atomic in one script on one node, and desks spread over a cluster's masters. ``NOTIFY_DESKS`` maps queues to desks
(``sales:sales,renewals;support:support,tech``); a queue it does not list belongs to the desk ``default`` (so
without the setting every queue is in one desk, as on one Redis). An agent serves the queues of one desk.

What is not a desk's lives in slots of its own, each read or written by one command (never inside a desk's
script): which desk a customer's session is in (``notify:{s:<sid>}:desk``, for its status and cancel, which know
only the session id), which desk an agent is in (``notify:{a:<aid>}:desk``), dashboard tickets
(``notify:{tickets}:t:<ticket>``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from shared.errors import ValidationFailed
from shared.scripts import Keyspace

from .frames import QUEUE_PATTERN

__all__ = ["AGENT_DESK", "DEFAULT_DESK", "DESK", "SESSION_DESK", "TICKETS", "DeskMap"]

DEFAULT_DESK = "default"
DESK_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
QUEUE_NAME = re.compile(QUEUE_PATTERN)

DESK = Keyspace(
    "notify:",
    "d:{}",
    req="req:{}",
    tomb="tomb:{}",
    q="q:{}",
    u="u:{}",
    held="held:{}",
    seen="seen:{}",
    declined="declined:{}",
    waits="waits",
    offers="offers",
    agent="agent:{}",
    conn="conn:{}",
    avail="avail:{}",
    free="free:{}",
    aseen="aseen:{}",
    aoffers="aoffers:{}",
    asessions="asessions:{}",
    noagents="noagents:{}",
    queues="queues",
    agents="agents",
    live="live",
    outbox="outbox",
    lease="outbox:lease",
    stats="stats:{}:{}",
    waited="waited:{}:{}",
    recent="recent:{}",
)
SESSION_DESK = Keyspace("notify:", "s:{}", desk="desk")
AGENT_DESK = Keyspace("notify:", "a:{}", desk="desk")
TICKETS = Keyspace("notify:", "tickets", ticket="t:{}")


class DeskMap:
    """Which desk each queue belongs to (``NOTIFY_DESKS``); queues not listed are the default desk's."""

    def __init__(self, desks: dict[str, tuple[str, ...]]) -> None:
        self.queues = desks
        self._of = {queue: desk for desk, queues in desks.items() for queue in queues}
        self.names = sorted({*desks, DEFAULT_DESK})
        """Every desk, the default one included (the loops go through each)."""

    @classmethod
    def parse(cls, text: str) -> DeskMap:
        """``desk:queue,queue;desk:queue``; raises ``ValueError`` saying what is wrong (never a guess)."""
        desks: dict[str, tuple[str, ...]] = {}
        seen: dict[str, str] = {}
        for part in (p.strip() for p in text.split(";")):
            if not part:
                continue
            name, colon, listed = part.partition(":")
            name = name.strip()
            if not colon or not DESK_NAME.fullmatch(name):
                raise ValueError(f"{part!r} is not desk:queue,queue (desk names: letters, digits, _ and -, 1-32)")
            if name in desks:
                raise ValueError(f"desk {name!r} is listed twice")
            queues = tuple(q.strip() for q in listed.split(",") if q.strip())
            if not queues:
                raise ValueError(f"desk {name!r} lists no queue")
            for queue in queues:
                if not QUEUE_NAME.fullmatch(queue):
                    raise ValueError(f"{queue!r} is not a queue name (letters, digits, _ and -, 1-64)")
                if queue in seen:
                    raise ValueError(f"queue {queue!r} is in two desks ({seen[queue]!r} and {name!r})")
                seen[queue] = name
            desks[name] = queues
        return cls(desks)

    def of(self, queue: str) -> str:
        return self._of.get(queue, DEFAULT_DESK)

    def of_queues(self, queues: Iterable[str], *, field: str = "queues") -> str:
        """The one desk of ``queues``; a list naming queues of two desks is refused (400 naming ``field``)."""
        desks = sorted({self.of(q) for q in queues})
        if len(desks) != 1:
            reason = f"an agent serves the queues of one desk; these are in desks {', '.join(desks)}"
            raise ValidationFailed.one(field, reason if desks else "name at least one queue")
        return desks[0]

    def base(self, desk: str) -> str:
        return DESK.base(desk)

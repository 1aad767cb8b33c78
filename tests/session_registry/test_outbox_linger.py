"""The outbox lingers to batch only under load: a quiet registry publishes an event at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import nats
import pytest
from aiohttp.test_utils import TestClient

from .conftest import EventLog, ev, open_session

pytestmark = pytest.mark.cluster


async def test_a_quiet_registry_publishes_without_lingering(
    start_registry: Callable[..., Awaitable[TestClient]], nc: nats.aio.client.Client, events: EventLog
) -> None:
    # A linger far longer than the wait below: the event can only arrive in time if the publisher does not linger.
    client = await start_registry(outbox_linger_s=30.0, outbox_linger_min_rate=1000.0)
    session = await open_session(nc, client)
    await events.wait(session.id, "created", within_s=2.0)
    await session.beacon(ev("pincode_updated", {"pinCode": "123456"}))
    (assigned,) = await events.wait(session.id, "pin_assigned", within_s=2.0)
    assert assigned.session.pin == "123456"

"""The beacon script (served by the registry at /beacon.js) in headless Chromium, against a recording stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, Page
from pytest_aiohttp import AiohttpServer

from .recorder import Recorder, page_app, recorder_app

pytestmark = pytest.mark.browser


@dataclass
class Harness:
    page: Page
    recorder: Recorder
    errors: list[str]

    async def attach(self, **options: object) -> None:
        await self.page.evaluate("(options) => window.attachBeacon(options)", options)

    async def emit(self, name: str, payload: object = None) -> None:
        await self.page.evaluate("([name, payload]) => window.fakeSession.emit(name, payload)", [name, payload])


@pytest.fixture(name="harness")
async def _harness(browser: Browser, aiohttp_server: AiohttpServer) -> AsyncIterator[Harness]:
    recorder = Recorder()
    registry = await aiohttp_server(recorder_app(recorder))
    site = await aiohttp_server(page_app(str(registry.make_url("/beacons"))))
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(str(site.make_url("/")))
    yield Harness(page, recorder, errors)
    if not page.is_closed():
        await page.close()


async def test_forwards_every_sdk_event_in_one_batch_with_ids_and_sequence(harness: Harness) -> None:
    await harness.attach(extraEvents=["annotation_started"])
    await harness.page.evaluate(
        """() => {
          const s = window.fakeSession;
          s.emit("pincode_updated", { pinCode: "482913" });
          s.emit("session_started");
          s.emit("agent_joined", { name: "Ana" });
          s.emit("remote_assist_started");
          s.emit("annotation_started", { tool: "pen" });
        }"""
    )
    await harness.recorder.wait_for(lambda r: len(r.events) == 5)

    assert len(harness.recorder.batches) == 1, "events emitted together go out as one batch"
    batch = harness.recorder.batches[0]
    assert batch["session_id"] == "sess-1" and batch["token"] == "tok-1"
    events = batch["events"]
    assert [e["name"] for e in events] == [
        "pincode_updated",
        "session_started",
        "agent_joined",
        "remote_assist_started",
        "unknown_sdk_event",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert len({e["id"] for e in events}) == 5
    assert all(isinstance(e["ts"], int) and e["ts"] > 1_600_000_000_000 for e in events)
    assert events[0]["payload"] == {"pinCode": "482913"}
    assert events[2]["payload"] == {"name": "Ana"}
    assert events[4]["payload"] == {"tool": "pen", "original_name": "annotation_started"}
    # text/plain keeps the cross-origin POST a simple request: no preflight, as sendBeacon requires.
    assert harness.recorder.content_types == ["text/plain;charset=UTF-8"]
    assert harness.recorder.preflights == 0
    assert harness.errors == []


async def test_splits_large_bursts_into_batches_of_max_batch(harness: Harness) -> None:
    await harness.attach(maxBatch=3)
    await harness.page.evaluate("() => { for (let i = 0; i < 7; i++) window.fakeSession.emit('agent_joined', {i}); }")
    await harness.recorder.wait_for(lambda r: len(r.events) == 7)

    assert [len(b["events"]) for b in harness.recorder.batches] == [3, 3, 1]
    assert [e["seq"] for e in harness.recorder.events] == list(range(1, 8))


async def test_flushes_pending_events_when_the_page_is_closed(harness: Harness) -> None:
    # A long batching delay: the heartbeats would not leave before the page goes away, unless the close flushes them.
    await harness.attach(flushDelayMs=60_000)
    await harness.page.evaluate("() => { window.beacon.track('heartbeat'); window.beacon.track('heartbeat'); }")
    assert harness.recorder.batches == []

    await harness.page.close(run_before_unload=True)
    await harness.recorder.wait_for(lambda r: len(r.events) >= 3)

    assert harness.recorder.names() == ["heartbeat", "heartbeat", "page_hidden"]
    assert harness.recorder.events[2]["payload"] == {"reason": "unload"}


async def test_a_tab_hidden_then_closed_reports_both_reasons(harness: Harness) -> None:
    """A closing tab turns hidden first; the registry must still learn it was unloaded (contract 2)."""
    await harness.attach()
    await harness.page.evaluate(
        """() => {
          Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
          document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    await harness.recorder.wait_for(lambda r: r.names() == ["page_hidden"])
    await harness.page.close(run_before_unload=True)
    await harness.recorder.wait_for(lambda r: len(r.events) >= 2)
    assert [e["payload"] for e in harness.recorder.events] == [{"reason": "hidden"}, {"reason": "unload"}]


async def test_a_page_put_in_the_back_forward_cache_says_so_and_comes_back(harness: Harness) -> None:
    await harness.attach(flushDelayMs=0)
    await harness.page.evaluate(
        """() => {
          window.dispatchEvent(new PageTransitionEvent("pagehide", { persisted: true }));
          window.dispatchEvent(new PageTransitionEvent("pageshow", { persisted: true }));
        }"""
    )
    await harness.recorder.wait_for(lambda r: len(r.events) == 2)
    # pagehide leaves by sendBeacon and pageshow by fetch: two requests that may arrive in either order. The page's
    # order is its seq, which the registry orders by.
    events = sorted(harness.recorder.events, key=lambda e: e["seq"])
    assert [(e["name"], e["payload"]) for e in events] == [
        ("page_hidden", {"reason": "bfcache"}),
        ("page_visible", {"reason": "bfcache"}),
    ]


LIFECYCLE = ["pincode_updated", "session_started", "agent_joined", "agent_left", "session_error", "session_ended"]


async def test_lifecycle_events_are_posted_within_20_ms_of_the_sdk_emitting_them(harness: Harness) -> None:
    """Issue 12's deadline, measured on the page clock around the beacon's fetch (the default 200 ms batching
    delay stays in force for heartbeats)."""
    await harness.attach(heartbeatMs=0)
    delays = await harness.page.evaluate(
        """async (names) => {
          const delays = {};
          for (const name of names) {
            const before = window.posts.length;
            const emitted = performance.now();
            window.fakeSession.emit(name, name === "pincode_updated" ? { pinCode: "123456" } : {});
            while (window.posts.length === before) await new Promise((resolve) => setTimeout(resolve, 1));
            delays[name] = window.posts[before].at - emitted;
            // Wait for the answer: one request is in flight at a time, the next event must not queue behind it.
            while (window.beacon.stats.sent < before + 1) await new Promise((resolve) => setTimeout(resolve, 1));
          }
          return delays;
        }""",
        LIFECYCLE,
    )
    assert set(delays) == set(LIFECYCLE)
    assert all(delay < 20 for delay in delays.values()), delays
    await harness.recorder.wait_for(lambda r: r.names() == LIFECYCLE)


async def test_heartbeats_and_visibility_events_still_wait_to_share_a_request(harness: Harness) -> None:
    await harness.attach(heartbeatMs=30, flushDelayMs=300)
    await harness.emit("session_started")
    await harness.recorder.wait_for(lambda r: r.names().count("heartbeat") >= 2)
    batches = [[e["name"] for e in b["events"]] for b in harness.recorder.batches]
    assert batches[0] == ["session_started"], "the lifecycle event did not wait for the heartbeats"
    assert len(batches[1]) >= 2 and set(batches[1]) == {"heartbeat"}, batches


async def test_a_refused_event_is_dropped_and_the_rest_of_its_batch_is_not_resent(harness: Harness) -> None:
    harness.recorder.refuse = {"bogus"}
    await harness.attach(retryMinMs=10)
    await harness.page.evaluate("() => { window.beacon.track('bogus'); window.fakeSession.emit('session_started'); }")
    await harness.page.wait_for_function("() => window.beacon.stats.sent === 1 && window.beacon.stats.dropped === 1")
    # A whole batch refused (400 naming every event) is dropped too, never retried.
    await harness.page.evaluate("() => window.beacon.track('bogus')")
    await harness.page.wait_for_function("() => window.beacon.stats.dropped === 2")
    await harness.emit("session_ended")
    await harness.recorder.wait_for(lambda r: "session_ended" in r.names())
    # The recorder has the request before the page has read its answer.
    await harness.page.wait_for_function("() => window.beacon.stats.sent === 2")

    batches = [[e["name"] for e in b["events"]] for b in harness.recorder.batches]
    assert batches == [["bogus", "session_started"], ["bogus"], ["session_ended"]]
    assert await harness.page.evaluate("() => window.beacon.stats") == {
        "sent": 2,
        "failed": 0,
        "dropped": 2,
        "beaconed": 0,
    }
    assert await harness.page.evaluate("() => window.beaconErrors") == ["rejected", "rejected"]


async def test_visibility_changes_become_page_hidden_and_page_visible(harness: Harness) -> None:
    await harness.attach()
    await harness.page.evaluate(
        """() => {
          let state = "hidden";
          Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
          document.dispatchEvent(new Event("visibilitychange"));
          state = "visible";
          document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    await harness.recorder.wait_for(lambda r: r.names() == ["page_hidden", "page_visible"])
    assert harness.recorder.events[0]["payload"] == {"reason": "hidden"}


async def test_retries_a_failed_post_until_it_is_delivered(harness: Harness) -> None:
    harness.recorder.fail_next = 2
    await harness.attach(retryMinMs=20)
    await harness.emit("pincode_updated", {"pinCode": "999000"})

    await harness.recorder.wait_for(lambda r: len(r.events) == 1)
    assert harness.recorder.failures == 2
    assert harness.recorder.names() == ["pincode_updated"]
    await harness.page.wait_for_function("() => window.beacon.stats.sent === 1")
    assert await harness.page.evaluate("() => window.beacon.stats") == {
        "sent": 1,
        "failed": 2,
        "dropped": 0,
        "beaconed": 0,
    }


async def test_a_reload_resends_what_could_not_be_delivered_and_keeps_the_sequence(harness: Harness) -> None:
    harness.recorder.fail_next = 1_000_000  # the registry is down while the first page lives
    await harness.attach(retryMinMs=60_000)
    await harness.emit("pincode_updated", {"pinCode": "777888"})
    await harness.recorder.wait_for(lambda r: r.failures >= 1)

    harness.recorder.fail_next = 0
    await harness.page.reload()
    await harness.attach()

    await harness.recorder.wait_for(lambda r: "page_visible" in r.names())
    events = {e["name"]: e for e in harness.recorder.events}
    assert events["pincode_updated"]["payload"] == {"pinCode": "777888"}
    assert events["page_visible"]["payload"] == {"reason": "reload"}
    assert events["page_hidden"]["seq"] == 2 and events["page_visible"]["seq"] == 3


async def test_sends_heartbeats_while_the_session_is_live_and_forgets_it_once_ended(harness: Harness) -> None:
    await harness.attach(heartbeatMs=50, flushDelayMs=0)
    await harness.emit("session_started")
    await harness.recorder.wait_for(lambda r: r.names().count("heartbeat") >= 2)
    await harness.emit("session_ended")
    await harness.recorder.wait_for(lambda r: "session_ended" in r.names())
    assert harness.recorder.names()[0] == "session_started"
    # Everything of an ended session was delivered: nothing is kept for a reload to resume.
    await harness.page.wait_for_function("() => sessionStorage.getItem('cobrowse-beacon:sess-1') === null")


async def test_never_throws_into_the_host_page(harness: Harness) -> None:
    outcome = await harness.page.evaluate(
        """async () => {
          const results = [];
          // Bad arguments: a dead beacon whose methods still work.
          results.push(typeof CobrowseBeacon.attach(null, null).track);
          results.push(typeof CobrowseBeacon.attach({}, {sessionId: "x"}).flush);
          // A session whose on() throws, a payload that cannot be serialised, a fetch that throws.
          const hostile = { on() { throw new Error("sdk exploded"); } };
          CobrowseBeacon.attach(hostile, { sessionId: "s", token: "t", url: "/nowhere" });
          window.fetch = () => { throw new Error("fetch exploded"); };
          const beacon = CobrowseBeacon.attach(window.fakeSession, { sessionId: "s2", token: "t", url: "/x",
                                                                    flushDelayMs: 0, retryMinMs: 10 });
          const circular = {}; circular.self = circular;
          window.fakeSession.emit("pincode_updated", circular);
          beacon.track("heartbeat", 42);
          await beacon.flush();
          await beacon.detach();
          return results;
        }"""
    )
    assert outcome == ["function", "function"]
    assert harness.errors == []

/*! cobrowse-desk beacon v1 | Apache-2.0
 * Forwards the Zoom Cobrowse SDK's session events to the cobrowse-desk session registry.
 *
 *   ZoomCobrowseSDK.init(settings, ({ success, session }) => {
 *     if (!success) return;
 *     CobrowseBeacon.attach(session, { url: start.beacon_url, sessionId: start.session_id, token: start.session_token });
 *     session.start({ sdkToken: start.sdk_token });
 *   });
 *
 * Every event goes out as {id, name, ts, seq, payload} in batches {session_id, token, events} POSTed as text/plain
 * (a "simple" request: no CORS preflight, and the only body navigator.sendBeacon can send across origins).
 * Lifecycle events (the PIN, the session starting or ending, an agent joining or leaving, an error) leave at once:
 * `pincode_updated` is what puts the customer in the queue. Only heartbeats and page-visibility noise wait up to
 * flushDelayMs to share a request. The registry answers per event (202 {accepted, duplicates, ignored, rejected});
 * an event it refused is dropped, the rest of its batch counts as delivered; only a network error or a 5xx/429
 * keeps a batch for a retry.
 * Pending events live in sessionStorage, so what a closed or reloaded page could not deliver is sent on its next
 * load; the registry applies each event id once, so a resend is harmless. Nothing in here throws into the page.
 */
(function (root) {
  "use strict";

  var SDK_EVENTS = [
    "pincode_updated", "session_started", "agent_joined", "agent_left", "session_reconnecting",
    "session_ended", "session_error", "remote_assist_started", "remote_assist_stopped",
  ];
  var DEFAULTS = {
    url: "/beacons",          // the registry's POST /beacons (start answers it as beacon_url)
    sessionId: "",            // session_id from POST /api/customer/start
    token: "",                // session_token from the same answer (scoped to this session)
    extraEvents: [],          // more SDK event names to listen to; they go out as unknown_sdk_event
    flushDelayMs: 200,        // how long heartbeats and visibility events gather into one batch
    maxBatch: 50,             // events per request
    maxPending: 500,          // oldest events are dropped beyond this (a page offline for very long)
    heartbeatMs: 15000,       // heartbeat period while a session is live; 0 turns heartbeats off
    retryMinMs: 500,          // first retry delay; doubles up to retryMaxMs
    retryMaxMs: 30000,
    storage: "sessionStorage", // "sessionStorage" or "none"
    onError: null,            // function (error, context) for diagnostics; never required
  };
  var LIVE = { pincode_updated: 1, session_started: 1, agent_joined: 1, agent_left: 1, session_reconnecting: 1,
    remote_assist_started: 1, remote_assist_stopped: 1 };
  // Sent as soon as the SDK emits them (the same task's other events still share the request).
  var URGENT = { pincode_updated: 1, session_started: 1, agent_joined: 1, agent_left: 1, session_ended: 1,
    session_error: 1 };
  var SEND_HEADERS = { "Content-Type": "text/plain;charset=UTF-8" };

  function newId() {
    try {
      if (root.crypto && root.crypto.randomUUID) return root.crypto.randomUUID();
    } catch (e) { /* fall through */ }
    return "e" + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }

  // SDK payloads are plain objects in practice; anything that does not survive JSON is replaced, not thrown.
  function plain(value) {
    if (value === undefined || value === null) return {};
    try {
      var copy = JSON.parse(JSON.stringify(value));
      return copy !== null && typeof copy === "object" && !Array.isArray(copy) ? copy : { value: copy };
    } catch (e) {
      return { unserializable: String(e && e.message || e) };
    }
  }

  function Beacon(session, options) {
    var self = this;
    this.opts = {};
    for (var k in DEFAULTS) this.opts[k] = options && options[k] !== undefined ? options[k] : DEFAULTS[k];
    this.session = session;
    this.storeKey = "cobrowse-beacon:" + this.opts.sessionId;
    this.seq = 0;
    this.pending = [];     // not yet delivered
    this.unconfirmed = []; // handed to sendBeacon while the page went away; resent after a reload
    this.inflight = false;
    this.failures = 0;
    this.timer = null;
    this.heartbeat = null;
    this.hidden = false;
    this.hiddenReason = null;
    this.urgent = false;   // a lifecycle event waits: flush in this task's microtask, not after flushDelayMs
    this.ended = false;
    this.unsubscribers = [];
    this.stats = { sent: 0, failed: 0, dropped: 0, beaconed: 0 };

    var resumed = this.load();
    this.listenTo(SDK_EVENTS.concat(this.opts.extraEvents || []));
    this.onVisibility = this.guard(function () {
      if (document.visibilityState === "hidden") self.pageHidden("hidden");
      else self.pageVisible();
    });
    this.onPageHide = this.guard(function (event) { self.pageHidden(event && event.persisted ? "bfcache" : "unload"); });
    this.onPageShow = this.guard(function (event) { if (event && event.persisted) self.pageVisible("bfcache"); });
    this.onOnline = this.guard(function () { self.flush(); });
    root.addEventListener("pagehide", this.onPageHide);
    root.addEventListener("pageshow", this.onPageShow);
    root.addEventListener("online", this.onOnline);
    if (root.document) document.addEventListener("visibilitychange", this.onVisibility);

    if (resumed) {
      // A reload of a page whose session was live: what the last page could not confirm goes out again.
      this.pending = this.unconfirmed.concat(this.pending);
      this.unconfirmed = [];
      if (!this.ended) {
        this.record("page_visible", { reason: "reload" });
        this.startHeartbeat();
      }
    }
    if (this.pending.length) this.schedule(0);
  }

  Beacon.prototype.guard = function (fn) {
    var self = this;
    return function () {
      try {
        return fn.apply(self, arguments);
      } catch (error) {
        self.report(error, "internal");
      }
    };
  };

  Beacon.prototype.report = function (error, context) {
    try {
      if (typeof this.opts.onError === "function") this.opts.onError(error, context);
    } catch (e) { /* the page's own handler failed; nothing left to tell */ }
  };

  Beacon.prototype.listenTo = function (names) {
    var self = this;
    var session = this.session;
    if (!session || typeof session.on !== "function") {
      this.report(new Error("session has no on() method"), "attach");
      return;
    }
    names.forEach(function (name) {
      var handler = self.guard(function (payload) { self.sdkEvent(name, payload); });
      try {
        session.on(name, handler);
        if (typeof session.off === "function") self.unsubscribers.push(function () { session.off(name, handler); });
      } catch (error) {
        self.report(error, "subscribe:" + name);
      }
    });
  };

  Beacon.prototype.sdkEvent = function (name, payload) {
    if (SDK_EVENTS.indexOf(name) < 0) {
      var data = plain(payload);
      data.original_name = name;
      this.record("unknown_sdk_event", data);
      return;
    }
    this.record(name, plain(payload));
    if (name === "session_ended") {
      this.ended = true;
      this.stopHeartbeat();
    } else if (LIVE[name]) {
      this.ended = false;
      this.startHeartbeat();
    }
  };

  Beacon.prototype.record = function (name, payload) {
    this.seq += 1;
    this.pending.push({ id: newId(), name: name, ts: Date.now(), seq: this.seq, payload: payload || {} });
    if (this.pending.length > this.opts.maxPending) {
      this.stats.dropped += this.pending.length - this.opts.maxPending;
      this.pending.splice(0, this.pending.length - this.opts.maxPending);
    }
    this.save();
    if (URGENT[name]) this.flushSoon();
    else this.schedule(this.pending.length >= this.opts.maxBatch ? 0 : this.opts.flushDelayMs);
  };

  Beacon.prototype.schedule = function (delay) {
    if (this.timer !== null || this.inflight || this.urgent) return;
    var self = this;
    this.timer = setTimeout(this.guard(function () { self.timer = null; self.flush(); }), delay);
  };

  // A microtask rather than a 0 ms timer: it runs before the browser's next task (timers are clamped and queue
  // behind rendering), and events the SDK emits in the same task still leave together. While a request is in
  // flight the flag stays set and its completion sends at once.
  Beacon.prototype.flushSoon = function () {
    if (this.urgent) return;
    this.urgent = true;
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    var self = this;
    Promise.resolve().then(this.guard(function () { if (!self.inflight) self.flush(); }));
  };

  Beacon.prototype.body = function (events) {
    return JSON.stringify({ session_id: this.opts.sessionId, token: this.opts.token, events: events });
  };

  // Sends one batch with fetch. A 202 names the events it refused by index: those are dropped, the others were
  // applied (or were duplicates). A 4xx other than 429 means the registry will never take the batch: it is dropped.
  // A network error, 429 or 5xx keeps it in `pending`, retried with backoff.
  Beacon.prototype.flush = function () {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    if (this.inflight) return Promise.resolve();
    this.urgent = false;
    if (!this.pending.length) return Promise.resolve();
    var self = this;
    var batch = this.pending.slice(0, this.opts.maxBatch);
    this.inflight = true;
    var request;
    try {
      request = root.fetch(this.opts.url, {
        method: "POST", body: this.body(batch), headers: SEND_HEADERS, keepalive: true, credentials: "omit",
      });
    } catch (error) {
      request = Promise.reject(error);
    }
    return request.then(function (response) {
      if (response.status === 429 || response.status >= 500) throw new Error("HTTP " + response.status);
      if (!response.ok) {
        self.report(new Error("registry refused batch: HTTP " + response.status), "rejected");
        return batch.length;
      }
      return response.json().then(function (answer) {
        var refused = answer && Array.isArray(answer.rejected) ? answer.rejected : [];
        refused.forEach(function (item) {
          var event = batch[item && item.index];
          self.report(new Error("registry refused " + (event ? event.name : "event") + ": " +
                                (item && item.property) + " " + (item && item.reason)), "rejected");
        });
        return Math.min(refused.length, batch.length);
      }, function () { return 0; }); // a 2xx without a readable answer still took the batch
    }).then(function (refused) {
      self.forget(batch);
      self.failures = 0;
      self.stats.sent += batch.length - refused;
      self.stats.dropped += refused;
    }, function (error) {
      self.failures += 1;
      self.stats.failed += 1;
      self.report(error, "send");
    }).then(self.guard(function () {
      self.inflight = false;
      self.save();
      if (!self.pending.length) return;
      if (self.failures) {
        var wait = Math.min(self.opts.retryMaxMs, self.opts.retryMinMs * Math.pow(2, self.failures - 1));
        self.urgent = false; // a retry waits its backoff, lifecycle events included
        self.schedule(wait * (0.75 + Math.random() / 2));
      } else if (self.urgent) {
        self.flush();
      } else {
        self.schedule(0);
      }
    }));
  };

  Beacon.prototype.forget = function (batch) {
    var ids = {};
    batch.forEach(function (e) { ids[e.id] = 1; });
    this.pending = this.pending.filter(function (e) { return !ids[e.id]; });
  };

  // The page may be going away: hand everything to sendBeacon, which outlives the page. What it accepts is kept
  // as unconfirmed until the page is visible again (delivered by then) or reloaded (sent again, deduplicated).
  Beacon.prototype.flushOnExit = function () {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    while (this.pending.length) {
      var batch = this.pending.slice(0, this.opts.maxBatch);
      if (!this.sendBeacon(batch)) break;
      this.forget(batch);
      this.unconfirmed = this.unconfirmed.concat(batch);
      this.stats.beaconed += batch.length;
    }
    this.save();
    if (this.pending.length) this.flush(); // sendBeacon refused (quota, missing): fetch keepalive is the fallback
  };

  Beacon.prototype.sendBeacon = function (batch) {
    var nav = root.navigator;
    if (!nav || typeof nav.sendBeacon !== "function") return false;
    try {
      return nav.sendBeacon(this.opts.url, new Blob([this.body(batch)], { type: SEND_HEADERS["Content-Type"] }));
    } catch (error) {
      this.report(error, "sendBeacon");
      return false;
    }
  };

  // reason: "hidden" (tab in the background, still there), "unload" or "bfcache" (the page went away). A closing
  // tab first turns hidden, then fires pagehide: the second, stronger reason is sent too, or the registry would
  // never learn that the customer left.
  Beacon.prototype.pageHidden = function (reason) {
    if (!this.hidden || (this.hiddenReason === "hidden" && reason !== "hidden")) {
      this.hidden = true;
      this.hiddenReason = reason;
      this.record("page_hidden", { reason: reason });
    }
    this.flushOnExit();
  };

  Beacon.prototype.pageVisible = function (reason) {
    if (!this.hidden) return;
    this.hidden = false;
    this.hiddenReason = null;
    this.unconfirmed = [];
    this.record("page_visible", { reason: reason || "visible" });
  };

  Beacon.prototype.startHeartbeat = function () {
    if (this.heartbeat !== null || !(this.opts.heartbeatMs > 0)) return;
    var self = this;
    this.heartbeat = setInterval(this.guard(function () { self.record("heartbeat", {}); }), this.opts.heartbeatMs);
  };

  Beacon.prototype.stopHeartbeat = function () {
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
  };

  Beacon.prototype.storage = function () {
    if (this.opts.storage !== "sessionStorage") return null;
    try {
      return root.sessionStorage || null;
    } catch (e) {
      return null; // storage blocked (privacy settings, sandboxed frame)
    }
  };

  Beacon.prototype.save = function () {
    var store = this.storage();
    if (!store) return;
    try {
      if (this.ended && !this.pending.length && !this.unconfirmed.length) {
        store.removeItem(this.storeKey); // all delivered: nothing left to resume
        return;
      }
      store.setItem(this.storeKey, JSON.stringify({
        seq: this.seq, ended: this.ended, pending: this.pending, unconfirmed: this.unconfirmed,
      }));
    } catch (error) {
      this.report(error, "storage");
    }
  };

  // Returns true when this session was already being tracked in this tab (a reload).
  Beacon.prototype.load = function () {
    var store = this.storage();
    if (!store) return false;
    try {
      var saved = JSON.parse(store.getItem(this.storeKey) || "null");
      if (!saved) return false;
      this.seq = saved.seq || 0;
      this.ended = !!saved.ended;
      this.pending = saved.pending || [];
      this.unconfirmed = saved.unconfirmed || [];
      return true;
    } catch (error) {
      this.report(error, "storage");
      return false;
    }
  };

  Beacon.prototype.detach = function () {
    this.stopHeartbeat();
    this.unsubscribers.forEach(function (off) { try { off(); } catch (e) { /* already gone */ } });
    this.unsubscribers = [];
    root.removeEventListener("pagehide", this.onPageHide);
    root.removeEventListener("pageshow", this.onPageShow);
    root.removeEventListener("online", this.onOnline);
    if (root.document) document.removeEventListener("visibilitychange", this.onVisibility);
    return this.flush();
  };

  function noop() { return Promise.resolve(); }

  var DEAD = { track: noop, flush: noop, detach: noop, stats: {} };

  /**
   * Attach to a Zoom Cobrowse SDK session object. Returns {track(name, payload), flush(), detach(), stats}.
   * `track` sends an event of the page's own (it must be a name the registry knows, e.g. "heartbeat").
   */
  function attach(session, options) {
    try {
      if (!options || !options.sessionId || !options.token) throw new Error("sessionId and token are required");
      var beacon = new Beacon(session, options);
      return {
        track: beacon.guard(function (name, payload) {
          if (SDK_EVENTS.indexOf(name) >= 0) beacon.sdkEvent(name, payload);
          else beacon.record(name, plain(payload));
        }),
        flush: function () { try { return beacon.flush(); } catch (e) { beacon.report(e, "flush"); return noop(); } },
        detach: function () { try { return beacon.detach(); } catch (e) { beacon.report(e, "detach"); return noop(); } },
        stats: beacon.stats,
      };
    } catch (error) {
      try {
        if (options && typeof options.onError === "function") options.onError(error, "attach");
      } catch (e) { /* ignore */ }
      return DEAD;
    }
  }

  root.CobrowseBeacon = { attach: attach, version: "1", events: SDK_EVENTS.slice() };
})(typeof window !== "undefined" ? window : this);

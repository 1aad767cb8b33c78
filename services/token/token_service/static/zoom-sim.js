/*! cobrowse-desk simulated Zoom Cobrowse SDK | Apache-2.0
 *
 * A stand-in for Zoom's customer SDK, used when the server runs without Zoom credentials (ZOOM_SIMULATED=true),
 * so the whole flow works offline and in tests. It has the same surface the pages use:
 *
 *   ZoomCobrowseSDK.init(settings, ({success, session, error}) => ...)
 *   session.on(event, handler) / session.off(event, handler)
 *   session.start({sdkToken, customPinCode?}, cb?)   -> pincode_updated {pinCode}, then session_started
 *   session.join(cb?)                                 -> resumes a recoverable session after a reload
 *   session.end(cb?)                                  -> session_ended
 *   session.getSessionInfo()                          -> {sessionStatus, pinCode}
 *
 * Nothing is shared with Zoom and no screen is shared with anybody. What the real SDK learns from Zoom's servers
 * (an agent entered the PIN in the desk, remote assist began) cannot happen here by itself; the page drives it
 * through ZoomCobrowseSDK.simulation (see docs/browser.md, "How the simulated SDK works").
 */
(function (root) {
  "use strict";

  var STORE_KEY = "zcb-sim-session";
  var EVENT_DELAY_MS = 150; // the real SDK answers asynchronously, after a round trip to Zoom
  var active = null;

  function later(fn) { setTimeout(fn, EVENT_DELAY_MS); }

  function load() {
    try { return JSON.parse(root.sessionStorage.getItem(STORE_KEY) || "null"); } catch (e) { return null; }
  }

  function save(state) {
    try {
      if (state) root.sessionStorage.setItem(STORE_KEY, JSON.stringify(state));
      else root.sessionStorage.removeItem(STORE_KEY);
    } catch (e) { /* storage blocked: the session just cannot be recovered after a reload */ }
  }

  function looksLikeJwt(token) {
    return typeof token === "string" && /^[\w-]+\.[\w-]+\.[\w-]+$/.test(token);
  }

  function newPin() {
    var digits = new Uint32Array(1);
    root.crypto.getRandomValues(digits);
    return String(100000 + (digits[0] % 900000)); // Zoom's default PINs are 6 digits
  }

  function Session() {
    this.handlers = {};
    this.state = null; // {status, pinCode, agents}
    var saved = load();
    if (saved && saved.status === "started") {
      this.state = { status: "recoverable", pinCode: saved.pinCode, agents: saved.agents || [] };
    }
  }

  Session.prototype.on = function (name, handler) {
    (this.handlers[name] = this.handlers[name] || []).push(handler);
  };

  Session.prototype.off = function (name, handler) {
    this.handlers[name] = (this.handlers[name] || []).filter(function (h) { return h !== handler; });
  };

  Session.prototype.emit = function (name, payload) {
    (this.handlers[name] || []).slice().forEach(function (handler) {
      try { handler(payload); } catch (error) { setTimeout(function () { throw error; }); } // like a real emitter
    });
  };

  Session.prototype.start = function (options, cb) {
    var self = this;
    var done = typeof cb === "function" ? cb : function () {};
    if (this.state && this.state.status === "started") {
      later(function () {
        self.emit("session_error", { code: 1002, errorMsg: "SESSION_CONNECTING_IN_PROGRESS" });
        done({ success: false, error: { code: 1002 } });
      });
      return;
    }
    if (!options || !looksLikeJwt(options.sdkToken)) {
      later(function () {
        self.emit("session_error", { code: 2001, errorMsg: "TOKEN_INVALID" });
        done({ success: false, error: { code: 2001 } });
      });
      return;
    }
    var custom = options.customPinCode;
    if (custom !== undefined && !/^[A-Za-z0-9]{1,10}$/.test(String(custom))) {
      later(function () {
        self.emit("session_error", { code: 1008, errorMsg: "SESSION_PIN_INVALID_FORMAT" });
        done({ success: false, error: { code: 1008 } });
      });
      return;
    }
    var pin = custom !== undefined ? String(custom).toUpperCase() : newPin();
    this.state = { status: "started", pinCode: pin, agents: [] };
    save({ status: "started", pinCode: pin });
    later(function () {
      self.emit("pincode_updated", { pinCode: pin });
      self.emit("session_started", {});
      done({ success: true });
    });
  };

  Session.prototype.join = function (cb) {
    var self = this;
    var done = typeof cb === "function" ? cb : function () {};
    later(function () {
      if (!self.state || self.state.status !== "recoverable") {
        self.emit("session_error", { code: 1011, errorMsg: "SESSION_JOIN_FAILED" });
        done({ success: false, error: { code: 1011 } });
        return;
      }
      self.state.status = "started";
      self.emit("session_started", { recovered: true });
      done({ success: true });
    });
  };

  Session.prototype.end = function (cb) {
    var self = this;
    var done = typeof cb === "function" ? cb : function () {};
    var wasLive = this.state && this.state.status !== "ended";
    if (this.state) this.state.status = "ended";
    save(null);
    later(function () {
      if (wasLive) self.emit("session_ended", { reason: "customer" });
      done({ success: !!wasLive });
    });
  };

  Session.prototype.getSessionInfo = function () {
    var state = this.state;
    var status = !state ? "session_not_started"
      : state.status === "recoverable" ? "session_recoverable"
      : state.status === "ended" ? "session_ended" : "session_started";
    return { sessionStatus: status, pinCode: state ? state.pinCode : undefined, simulated: true };
  };

  // What Zoom's servers would tell the real SDK. Each call is a no-op without a live session.
  function live() { return active && active.state && active.state.status === "started" ? active : null; }

  function remember(s) { save({ status: "started", pinCode: s.state.pinCode, agents: s.state.agents }); }

  var simulation = {
    agentJoined: function (agent) {
      var s = live();
      if (!s) return false;
      var info = agent || {};
      if (s.state.agents.indexOf(info.userId) >= 0) return false; // one join per agent, as Zoom reports it
      s.state.agents.push(info.userId);
      remember(s);
      later(function () { s.emit("agent_joined", { userId: info.userId, name: info.name, simulated: true }); });
      return true;
    },
    agentLeft: function (agent) {
      var s = live();
      var info = agent || {};
      if (!s || s.state.agents.indexOf(info.userId) < 0) return false;
      s.state.agents = s.state.agents.filter(function (id) { return id !== info.userId; });
      remember(s);
      later(function () { s.emit("agent_left", { userId: info.userId, name: info.name, simulated: true }); });
      return true;
    },
    remoteAssist: function (on) {
      var s = live();
      if (!s) return false;
      later(function () { s.emit(on ? "remote_assist_started" : "remote_assist_stopped", { simulated: true }); });
      return true;
    },
    endedByAgent: function () {
      var s = live();
      if (!s) return false;
      s.state.status = "ended";
      save(null);
      later(function () { s.emit("session_ended", { reason: "agent", simulated: true }); });
      return true;
    },
  };

  root.ZoomCobrowseSDK = {
    simulated: true,
    version: "simulated",
    init: function (settings, cb) {
      active = active || new Session();
      setTimeout(function () { cb({ success: true, session: active }); }, 0);
    },
    simulation: simulation,
  };
})(window);

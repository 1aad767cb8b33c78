// Customer demo: "Get help" starts a cobrowse session, shows the Support PIN, the queue position and the agent.
// The flow a real site follows is the same: POST /api/customer/start, load Zoom's SDK, attach the beacon,
// session.start({sdkToken}). With ZOOM_SIMULATED the stand-in SDK (/static/zoom-sim.js) plays Zoom's part.
"use strict";

const STORE_KEY = "cobrowse-demo";
const POLL_MS = 1500;
const FIRST_POLL_MS = 2000;
// The CDN build documents no callback for join(), and after a reload it may not emit session_started either:
// waiting for it must end. pincode_updated or agent_joined prove the session is back (see connect()).
// A site may set window.COBROWSE_CONNECT_TIMEOUT_MS before this script.
const CONNECT_TIMEOUT_MS = Number(window.COBROWSE_CONNECT_TIMEOUT_MS) || 10000;
// Until the SDK reports the session ended, the beacon must keep forwarding: that session_ended is what ends the
// session in the registry when the server-side cancel did not get through. Detached after it, or after this.
const RETIRE_BEACON_MS = 10000;
// The SDK reports session_ended a moment after end(). A new "Get help" waits for it (or this long): arriving after
// the new start, it would finish the new request, and the new beacon would forward it to the new session.
const END_WAIT_MS = 3000;
// A site can route its pages to different queues: /demo?queue=billing.
const QUEUE = new URLSearchParams(location.search).get("queue") || "support";
const SDK_SETTINGS = {
  allowAgentAnnotation: true,
  allowCustomerAnnotation: true,
  piiMask: { maskType: "custom_input", maskCssSelectors: ".hide-me" },
};

const $ = (id) => document.getElementById(id);
const state = { config: null, start: null, session: null, beacon: null, poller: null, agentShown: false,
                agentName: null, retiring: null, ending: null };

// Once the customer works in the help panel, focus follows its views (the button they clicked disappears).
let panelInUse = false;

function show(view) {
  for (const el of document.querySelectorAll("#help [data-view]")) el.hidden = el.dataset.view !== view;
  document.body.dataset.view = view;
  const focusable = document.querySelector(`#help [data-view="${view}"] button`);
  if (focusable && panelInUse) focusable.focus();
}

function fail(message) {
  $("error-text").textContent = message;
  show("error");
}

async function api(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

// ZOOM_SDK_VERSION (zoom.sdk_version in /api/config) pins the CDN build, e.g. "3.10.0" or "3.10.x"; without it
// the URL gives Zoom's latest.
function sdkUrl(zoom) {
  const base = `https://${zoom.host}/static/resource/sdk/${encodeURIComponent(zoom.sdk_key)}/js`;
  return zoom.sdk_version ? `${base}/${encodeURIComponent(zoom.sdk_version)}` : base;
}

async function loadSdk(zoom) {
  if (window.ZoomCobrowseSDK) return;
  await loadScript(zoom.simulated ? "/static/zoom-sim.js" : sdkUrl(zoom));
}

// One key per click on "Get help": a retried POST (a lost answer, a 503) returns the same session, not a second.
function idempotencyKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function saveStart() {
  if (state.start) sessionStorage.setItem(STORE_KEY, JSON.stringify(state.start));
}

function initSdk() {
  return new Promise((resolve, reject) => {
    window.ZoomCobrowseSDK.init(SDK_SETTINGS, ({ success, session, error }) => {
      if (success) resolve(session);
      else reject(new Error(`the cobrowse SDK did not start (${error && error.code})`));
    });
  });
}

function minutes(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 45) return "less than a minute";
  const m = Math.round(seconds / 60);
  return `about ${m} minute${m === 1 ? "" : "s"}`;
}

// The Support PIN is kept with the request in sessionStorage: a reload shows it even before the SDK reports it.
function showPin(pin) {
  if (!pin) return;
  $("pin").textContent = pin;
  $("pin-active").textContent = pin;
  if (state.start && state.start.pin !== pin) {
    state.start.pin = pin;
    saveStart();
  }
}

function showAgentName(name) {
  if (!name) return;
  state.agentName = name;
  $("agent-name").textContent = name;
  if (state.start && state.start.agent_name !== name) {
    state.start.agent_name = name;
    saveStart();
  }
}

function agentJoined(name) {
  state.agentShown = true;
  $("queue-note").dataset.kind = "";
  $("queue-note").hidden = true;
  $("agent-name").textContent = "A support agent";
  if (state.start && !state.start.agent_joined) {
    state.start.agent_joined = true; // a reload shows the agent again (the SDK does not repeat agent_joined)
    saveStart();
  }
  showAgentName(name || state.agentName);
  show("active");
}

// The beacon of a finished request goes on forwarding until the SDK's session_ended (which the registry needs
// when the server-side cancel failed), then it is detached; a new "Get help" gets a beacon of its own.
function retireBeacon() {
  const beacon = state.beacon;
  state.beacon = null;
  if (!beacon) return;
  const retiring = { beacon, timer: setTimeout(() => detachRetired(retiring), RETIRE_BEACON_MS) };
  detachRetired(state.retiring);
  state.retiring = retiring;
}

function detachRetired(retiring) {
  if (!retiring) return;
  clearTimeout(retiring.timer);
  if (state.retiring === retiring) state.retiring = null;
  retiring.beacon.detach();
}

function finish(text) {
  stopPolling();
  retireBeacon();
  sessionStorage.removeItem(STORE_KEY);
  state.start = null;
  state.agentShown = false;
  state.agentName = null;
  $("ended-text").textContent = text;
  show("ended");
}

// Ends the SDK session; state.ending settles once the SDK has reported it (see END_WAIT_MS).
function endSession() {
  const session = state.session;
  if (!session) return;
  state.ending = new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      if (session.off) session.off("session_ended", done);
      resolve();
    };
    const timer = setTimeout(done, END_WAIT_MS);
    session.on("session_ended", done);
  });
  session.end();
}

// Every SDK event the page reacts to; the beacon forwards the same events to the registry by itself.
function wire(session) {
  session.on("pincode_updated", (payload) => {
    showPin(payload.pinCode || payload.pincode);
    if (!state.agentShown) show("waiting");
    startPolling();
  });
  session.on("agent_joined", (payload) => agentJoined(payload && payload.name));
  session.on("agent_left", () => {
    state.agentShown = false;
    state.agentName = null;
    if (state.start) {
      delete state.start.agent_name;
      delete state.start.agent_joined;
      saveStart();
    }
    show("waiting");
    $("queue-note").textContent = "The agent left the session. You are back in line.";
    $("queue-note").dataset.kind = "left";
    $("queue-note").hidden = false;
  });
  session.on("session_ended", () => {
    if (state.start) finish("Your support session has ended. Thanks for reaching out!");
    // After the beacon's own listener has forwarded this event (it was attached after this one).
    const retiring = state.retiring;
    setTimeout(() => detachRetired(retiring), 0);
  });
  session.on("session_error", (payload) => {
    if (!state.agentShown) fail(`The cobrowse session reported an error (code ${payload && payload.code}).`);
  });
}

async function poll() {
  const start = state.start;
  if (!start) return;
  const url = `${state.config.urls.notification}/api/requests/${encodeURIComponent(start.session_id)}` +
    `?token=${encodeURIComponent(start.session_token)}`;
  try {
    const request = await api(url);
    if (state.start !== start) return; // finished while the answer was on its way
    $("queue-position").textContent = request.position ? `#${request.position}` : "—";
    // No estimate is shown while nobody serves the queue (estimated_wait_s is null then).
    const wait = request.position && request.estimated_wait_s !== null && request.estimated_wait_s !== undefined;
    $("queue-wait").textContent = wait ? minutes(request.estimated_wait_s) : "—";
    $("queue-wait-row").hidden = !wait;
    const note = $("queue-note");
    if (request.no_agents && request.state === "queued") {
      note.textContent = "No agent is serving this line right now. You can keep waiting or try again later.";
      note.hidden = false;
    } else if (note.dataset.kind !== "left") {
      note.hidden = true; // an agent is available, or the request was offered
    }
    showAgentName(request.agent_name);
    if ((request.state === "claimed" || request.state === "joined") && state.config.zoom.simulated) {
      // Zoom tells the real SDK when the agent's desk joins; the stand-in learns it from the claim (docs/browser.md).
      window.ZoomCobrowseSDK.simulation.agentJoined({ userId: request.claimed_by || "agent",
                                                      name: request.agent_name });
    }
    if (request.state === "cancelled" || request.state === "ended") {
      // The desk closed the request (e.g. nobody answered in time): the cobrowse session has no purpose left.
      finish("Your help request was closed. You can ask for help again at any time.");
      endSession();
    }
  } catch (error) {
    if (error.status !== 404) console.warn("queue position unavailable", error.message);
  }
}

// The request reaches the queue a moment after the PIN (beacon -> registry -> NATS -> notification); looking
// earlier would get a 404, which the browser logs as an error, so the first look waits FIRST_POLL_MS.
function startPolling() {
  if (state.poller) return;
  const run = { timer: null }; // one chain of polls; a stopped chain does not schedule again
  const next = () => {
    if (state.poller !== run) return;
    poll().finally(() => {
      if (state.poller === run) run.timer = setTimeout(next, POLL_MS);
    });
  };
  state.poller = run;
  run.timer = setTimeout(next, FIRST_POLL_MS);
}

function stopPolling() {
  if (state.poller) clearTimeout(state.poller.timer);
  state.poller = null;
}

// Resolves {success} with the SDK's first answer to start()/join(): its callback (npm builds), the
// session_started / session_error event, or pincode_updated / agent_joined (a rejoined CDN session may emit only
// those). Nothing within CONNECT_TIMEOUT_MS is a failure: the page never hangs on the SDK.
async function connect(start, resume) {
  await loadSdk(start.zoom);
  const session = state.session || (await initSdk());
  if (!state.session) wire(session);
  state.session = session;
  detachRetired(state.retiring); // the last request's beacon must not forward this new session's events
  state.beacon = window.CobrowseBeacon.attach(session, {
    url: start.beacon_url, sessionId: start.session_id, token: start.session_token,
    onError: (error, context) => console.debug("beacon", context, error && error.message),
  });
  return new Promise((resolve) => {
    const listeners = [];
    let answered = false;
    const timer = setTimeout(() => answer({ success: false, error: { code: "timeout" } }), CONNECT_TIMEOUT_MS);
    function answer(result) {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      for (const [name, handler] of listeners) if (session.off) session.off(name, handler);
      resolve(result || { success: true });
    }
    const on = (name, handler) => {
      listeners.push([name, handler]);
      session.on(name, handler);
    };
    on("session_started", () => answer({ success: true }));
    on("pincode_updated", () => answer({ success: true }));
    on("agent_joined", () => answer({ success: true }));
    on("session_error", (payload) => answer({ success: false, error: payload }));
    if (resume) session.join(answer);
    else session.start({ sdkToken: start.sdk_token }, answer);
  });
}

// POST /api/customer/start, tried twice on a network error or 503 with the same Idempotency-Key: the server
// answers a known key with the session it already created.
async function startRequest(body) {
  const options = {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": idempotencyKey() },
    body: JSON.stringify(body),
  };
  try {
    return await api("/api/customer/start", options);
  } catch (error) {
    if (error.status !== undefined && error.status !== 503) throw error;
    return api("/api/customer/start", options);
  }
}

async function getHelp() {
  show("starting");
  $("queue-note").hidden = true;
  $("queue-note").dataset.kind = "";
  try {
    await state.ending;
    state.ending = null;
    const name = $("customer-name").value.trim();
    const start = await startRequest(name ? { queue: QUEUE, userName: name } : { queue: QUEUE });
    state.start = start;
    saveStart();
    const started = await connect(start, false);
    if (!started.success && state.start === start) {
      finish("");
      fail(`The cobrowse session did not start (${(started.error && started.error.code) || "no answer"}).`);
    }
  } catch (error) {
    fail(error.status === 429 ? "Too many requests from this network. Please wait a minute." :
      `We could not reach support: ${error.message}`);
  }
}

async function cancel() {
  const start = state.start;
  if (!start) return;
  $("cancel").disabled = true;
  try {
    await api(`${state.config.urls.notification}/api/requests/${encodeURIComponent(start.session_id)}`, {
      method: "DELETE", headers: { "X-Session-Token": start.session_token },
    });
  } catch (error) {
    console.warn("cancel request", error.message);
  } finally {
    $("cancel").disabled = false;
  }
  endSession();
  finish("Your help request was cancelled.");
}

// A reload within the reconnect window: the SDK reports a recoverable session and join() resumes it.
async function resume(saved) {
  state.start = saved;
  await loadSdk(saved.zoom);
  state.session = await initSdk();
  const info = state.session.getSessionInfo();
  if (info.sessionStatus !== "session_recoverable") {
    sessionStorage.removeItem(STORE_KEY);
    state.start = null;
    return false;
  }
  wire(state.session);
  showPin(info.pinCode || saved.pin);
  const joined = await connect(saved, true);
  if (!(joined && joined.success)) {
    finish("Your previous support session could not be resumed.");
    return true;
  }
  if (!state.agentShown) {
    if (saved.agent_joined) agentJoined(saved.agent_name);
    else show("waiting");
  }
  startPolling();
  return true;
}

async function boot() {
  $("help").addEventListener("click", (event) => {
    if (event.target.closest("button")) panelInUse = true;
  });
  $("contact-form").addEventListener("submit", (event) => event.preventDefault()); // decoration of the demo
  $("get-help").addEventListener("click", getHelp);
  $("again").addEventListener("click", () => show("idle"));
  $("retry").addEventListener("click", () => show("idle"));
  $("cancel").addEventListener("click", cancel);
  $("end").addEventListener("click", endSession);
  try {
    state.config = await api("/api/config");
    $("sim-banner").hidden = !state.config.zoom.simulated;
    await loadScript(`${state.config.urls.registry}/beacon.js`);
    const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
    if (!(saved && (await resume(saved)))) show("idle");
  } catch (error) {
    fail(`Support is unavailable right now: ${error.message}`);
  }
}

show("starting");
boot();

// Customer demo: "Get help" starts a cobrowse session, shows the Support PIN, the queue position and the agent.
// The flow a real site follows is the same: POST /api/customer/start, load Zoom's SDK, attach the beacon,
// session.start({sdkToken}). With ZOOM_SIMULATED the stand-in SDK (/static/zoom-sim.js) plays Zoom's part.
"use strict";

const STORE_KEY = "cobrowse-demo";
const POLL_MS = 1500;
const FIRST_POLL_MS = 2000;
// A site can route its pages to different queues: /demo?queue=billing.
const QUEUE = new URLSearchParams(location.search).get("queue") || "support";
const SDK_SETTINGS = {
  allowAgentAnnotation: true,
  allowCustomerAnnotation: true,
  piiMask: { maskType: "custom_input", maskCssSelectors: ".hide-me" },
};

const $ = (id) => document.getElementById(id);
const state = { config: null, start: null, session: null, beacon: null, poller: null, agentShown: false };

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

async function loadSdk(zoom) {
  if (window.ZoomCobrowseSDK) return;
  if (zoom.simulated) await loadScript("/static/zoom-sim.js");
  else await loadScript(`https://${zoom.host}/static/resource/sdk/${encodeURIComponent(zoom.sdk_key)}/js`);
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

function showPin(pin) {
  $("pin").textContent = pin;
  $("pin-active").textContent = pin;
}

function agentJoined(name) {
  state.agentShown = true;
  $("agent-name").textContent = name || "A support agent";
  if (state.start) {
    state.start.agent_name = $("agent-name").textContent;
    sessionStorage.setItem(STORE_KEY, JSON.stringify(state.start));
  }
  show("active");
}

function finish(text) {
  stopPolling();
  const beacon = state.beacon;
  state.beacon = null;
  // After the SDK's own listeners (the beacon still forwards this session_ended), stop forwarding: a new
  // "Get help" is a new session with a new beacon.
  if (beacon) setTimeout(() => beacon.detach(), 0);
  sessionStorage.removeItem(STORE_KEY);
  state.start = null;
  state.agentShown = false;
  $("ended-text").textContent = text;
  show("ended");
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
    if (state.start) delete state.start.agent_name;
    show("waiting");
    $("queue-note").textContent = "The agent left the session. You are back in line.";
    $("queue-note").hidden = false;
  });
  session.on("session_ended", () => {
    if (state.start) finish("Your support session has ended. Thanks for reaching out!");
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
    $("queue-position").textContent = request.position ? `#${request.position}` : "—";
    $("queue-wait").textContent = request.position ? minutes(request.estimated_wait_s) : "—";
    const note = $("queue-note");
    if (request.no_agents) {
      note.textContent = "No agent is serving this line right now. You can keep waiting or try again later.";
      note.hidden = false;
    }
    if ((request.state === "claimed" || request.state === "joined") && window.ZoomCobrowseSDK.simulated) {
      // Zoom tells the real SDK when the agent's desk joins; the stand-in learns it from the claim (docs/browser.md).
      window.ZoomCobrowseSDK.simulation.agentJoined({ userId: request.claimed_by || "agent",
                                                      name: request.agent_name });
    }
    if (request.state === "cancelled" || request.state === "ended") {
      // The desk closed the request (e.g. nobody answered in time): the cobrowse session has no purpose left.
      finish("Your help request was closed. You can ask for help again at any time.");
      state.session.end();
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

// Resolves {success} with the SDK's first answer to start()/join(): its callback (npm builds) or the
// session_started / session_error event (the CDN build documents no callback for join()).
async function connect(start, resume) {
  await loadSdk(start.zoom);
  const session = state.session || (await initSdk());
  if (!state.session) wire(session);
  state.session = session;
  state.beacon = window.CobrowseBeacon.attach(session, {
    url: start.beacon_url, sessionId: start.session_id, token: start.session_token,
    onError: (error, context) => console.debug("beacon", context, error && error.message),
  });
  return new Promise((resolve) => {
    let answered = false;
    const answer = (result) => {
      if (!answered) resolve(result || { success: true });
      answered = true;
    };
    session.on("session_started", () => answer({ success: true }));
    session.on("session_error", (payload) => answer({ success: false, error: payload }));
    if (resume) session.join(answer);
    else session.start({ sdkToken: start.sdk_token }, answer);
  });
}

async function getHelp() {
  show("starting");
  try {
    const name = $("customer-name").value.trim();
    const start = await api("/api/customer/start", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(name ? { queue: QUEUE, userName: name } : { queue: QUEUE }),
    });
    state.start = start;
    sessionStorage.setItem(STORE_KEY, JSON.stringify(start));
    await connect(start, false);
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
  state.session.end();
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
  showPin(info.pinCode);
  const joined = await connect(saved, true);
  if (!(joined && joined.success)) {
    finish("Your previous support session could not be resumed.");
    return true;
  }
  if (saved.agent_name) agentJoined(saved.agent_name);
  else show("waiting");
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
  $("end").addEventListener("click", () => state.session && state.session.end());
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

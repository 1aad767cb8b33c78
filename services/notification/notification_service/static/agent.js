// Agent console: one WebSocket (/ws/agent, frames in docs/api.md) brings offers; a claim opens the desk.
"use strict";

(() => {
  const { $, el, duration, keyStore, wsUrl } = window.cb;
  const KEY = "cobrowse-agent-key";
  // Why an offer went away or a claimed session ended (offer_revoked and session_ended reasons).
  const REASONS = {
    taken: "taken by another agent",
    timeout: "offer timed out",
    cancelled: "cancelled by the customer",
    ended: "session ended",
    withdrawn: "withdrawn (you went away or stopped serving its queue)",
    away: "withdrawn (you were set away)",
    escalated: "moved to another queue",
    ended_in_sdk: "ended in the cobrowse session",
    abandoned: "the customer left and did not come back",
    heartbeat_lost: "the customer's page stopped answering",
    gone: "no longer yours",
  };

  const requests = new Map(); // session_id -> offer frame + receivedAt
  let ws = null;
  let retryMs = 500;
  let retryTimer = null;
  let signedIn = false;

  function notice(text) {
    $("notice").textContent = text;
  }

  function remember(text) {
    const list = $("history");
    list.prepend(el("li", {}, el("time", {}, new Date().toLocaleTimeString()), " ", text));
    while (list.children.length > 8) list.lastElementChild.remove();
  }

  function setConn(label, kind) {
    const pill = $("conn");
    pill.textContent = label;
    pill.dataset.kind = kind;
  }

  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  // ------------------------------------------------------------------------------------------- requests

  function waitedNow(request) {
    return request.waited_s + (Date.now() - request.receivedAt) / 1000;
  }

  function renderRequests() {
    const list = $("requests");
    // Re-rendering replaces the buttons: keep keyboard focus on the same button of the same request.
    const focused = document.activeElement && document.activeElement.closest("#requests [data-session]")
      ? [document.activeElement.closest("[data-session]").dataset.session, document.activeElement.textContent]
      : null;
    list.replaceChildren(...[...requests.values()].sort((a, b) => waitedNow(b) - waitedNow(a)).map((request) => {
      const who = request.customer_name || "Customer";
      const left = request.expires_in_s ? request.expires_in_s - (Date.now() - request.receivedAt) / 1000 : null;
      return el("li", { class: "request", "data-session": request.session_id },
        el("div", { class: "request-main" },
          el("strong", {}, who),
          el("span", { class: "queue-tag" }, request.queue),
          el("div", { class: "wait" }, "waiting ", el("span", { class: "waited" }, duration(waitedNow(request))),
            left !== null ? el("span", { class: "expires" }, ` · answer within ${duration(Math.max(0, left))}`) : null)),
        el("div", { class: "request-actions" },
          el("button", { class: "btn primary small", type: "button", "aria-label": `Claim request from ${who}`,
                         onclick: () => claim(request.session_id) }, "Claim"),
          el("button", { class: "btn ghost small", type: "button", "aria-label": `Decline request from ${who}`,
                         onclick: () => decline(request.session_id) }, "Decline")));
    }));
    if (focused) {
      const item = list.querySelector(`[data-session="${CSS.escape(focused[0])}"]`);
      const button = item && [...item.querySelectorAll("button")].find((b) => b.textContent === focused[1]);
      if (button) button.focus();
    }
    $("request-count").textContent = String(requests.size);
    $("no-requests").hidden = requests.size > 0;
    $("no-requests").textContent = document.body.dataset.status === "available"
      ? "No one is waiting for you right now." : "You are away. Set yourself available to receive requests.";
  }

  function claim(sessionId) {
    const item = document.querySelector(`[data-session="${CSS.escape(sessionId)}"] button`);
    if (item) item.disabled = true;
    send({ type: "claim", session_id: sessionId });
  }

  function decline(sessionId) {
    send({ type: "decline", session_id: sessionId });
    const request = requests.get(sessionId);
    requests.delete(sessionId);
    renderRequests();
    if (request) remember(`Declined ${request.customer_name || "a customer"}`);
  }

  function dropRequest(sessionId, reason) {
    const request = requests.get(sessionId);
    if (!request) return;
    requests.delete(sessionId);
    renderRequests();
    remember(`Request from ${request.customer_name || "a customer"}: ${REASONS[reason] || reason}`);
  }

  // ------------------------------------------------------------------------------------------- desks
  // One desk per claimed session (capacity can be above 1). Each desk keeps its own iframe, hidden while another
  // desk is shown, so switching never reloads a desk. The customer names and the shown desk survive a reload in
  // sessionStorage; the sessions themselves come back from the `ready` frame (re-claimed for a fresh token).

  const DESKS_KEY = "cobrowse-agent-desks";
  const desks = new Map(); // session_id -> {session_id, queue, pin, who, url, problem, ended, frame}
  let shown = null;
  let restored = null; // what the page before a reload saved, read once before this page saves anything

  function saveDesks() {
    const names = {};
    for (const desk of desks.values()) names[desk.session_id] = desk.who;
    sessionStorage.setItem(DESKS_KEY, JSON.stringify({ names, shown }));
  }

  function savedDesks() {
    if (restored) return restored;
    try {
      restored = JSON.parse(sessionStorage.getItem(DESKS_KEY) || "null");
    } catch (error) {
      restored = null;
    }
    if (!(restored && restored.names)) restored = { names: {}, shown: null };
    return restored;
  }

  function deskFor(sessionId) {
    let desk = desks.get(sessionId);
    if (!desk) {
      desk = { session_id: sessionId, queue: "", pin: "", who: savedDesks().names[sessionId] || "customer",
               url: null, problem: null, ended: null, frame: null };
      desks.set(sessionId, desk);
    }
    return desk;
  }

  function renderDesks() {
    const live = [...desks.values()];
    $("session-count").textContent = String(live.filter((d) => !d.ended).length);
    $("my-sessions").replaceChildren(...live.map((desk) => {
      const label = `${desk.who}${desk.pin ? ` · PIN ${desk.pin}` : ""}`;
      return el("li", { class: `my-session${desk.ended ? " ended" : ""}`, "data-session": desk.session_id,
                        "aria-current": desk.session_id === shown ? "true" : "false" },
        el("button", { class: "switch", type: "button", "aria-pressed": String(desk.session_id === shown),
                       onclick: () => showDesk(desk.session_id) }, label),
        desk.ended
          ? el("button", { class: "btn ghost small", type: "button", "aria-label": `Dismiss session with ${desk.who}`,
                           onclick: () => dropDesk(desk.session_id) }, "Dismiss")
          : el("button", { class: "btn ghost small", type: "button", "aria-label": `Release session with ${desk.who}`,
                           onclick: () => send({ type: "release", session_id: desk.session_id }) }, "Release"));
    }));
    for (const desk of live) if (desk.frame) desk.frame.hidden = desk.session_id !== shown;
    const desk = desks.get(shown);
    $("desk-info").textContent = desk ? `with ${desk.who}${desk.pin ? ` · PIN ${desk.pin}` : ""}` : "";
    $("desk-message").hidden = !(desk && desk.ended);
    $("desk-message").textContent = desk && desk.ended
      ? `The session with ${desk.who} ended: ${REASONS[desk.ended] || desk.ended}.` : "";
    const empty = $("desk-empty");
    empty.hidden = Boolean(desk && (desk.frame || desk.ended));
    if (!desk) {
      empty.textContent = live.length ? "Pick one of your sessions above." : "Claim a request to open the desk for its PIN.";
    } else if (desk.problem) {
      empty.replaceChildren(`Claimed, but the desk could not open: ${desk.problem}. `,
        el("button", { class: "btn secondary small", type: "button",
                       onclick: () => send({ type: "claim", session_id: desk.session_id }) }, "Try again"));
    } else if (!desk.frame) {
      empty.textContent = "Opening the desk…";
    }
    saveDesks();
  }

  function showDesk(sessionId) {
    shown = desks.has(sessionId) ? sessionId : null;
    renderDesks();
  }

  function openDesk(frame) {
    const request = requests.get(frame.session_id);
    requests.delete(frame.session_id);
    renderRequests();
    const desk = deskFor(frame.session_id);
    if (request && request.customer_name) desk.who = request.customer_name;
    Object.assign(desk, { queue: frame.queue, pin: frame.pin, ended: null,
                          problem: frame.desk_url ? null : (frame.token_error ? frame.token_error.message : "no desk link") });
    if (frame.desk_url && frame.desk_url !== desk.url) {
      if (desk.frame) desk.frame.remove();
      desk.url = frame.desk_url;
      desk.frame = el("iframe", { class: "desk-frame", "data-session": desk.session_id, src: desk.url,
                                  title: `Cobrowse desk with ${desk.who}`,
                                  allow: "autoplay *; camera *; microphone *; display-capture *; geolocation *;" });
      $("desks").append(desk.frame);
    }
    // A claim the agent just made comes to the front; desks resumed after a reload keep the one that was shown.
    if (request || !shown || !desks.has(shown)) shown = desk.session_id;
    if (request) remember(`Claimed ${desk.who} (PIN ${frame.pin})`);
    renderDesks();
  }

  function endDesk(sessionId, reason) {
    const desk = desks.get(sessionId);
    if (!desk || desk.ended) return;
    desk.ended = reason;
    if (desk.frame) desk.frame.remove();
    desk.frame = null;
    desk.url = null;
    const text = `The session with ${desk.who} ended: ${REASONS[reason] || reason}.`;
    remember(text);
    notice(text);
    renderDesks();
  }

  function dropDesk(sessionId) {
    const desk = desks.get(sessionId);
    if (!desk) return;
    if (desk.frame) desk.frame.remove();
    desks.delete(sessionId);
    if (shown === sessionId) shown = [...desks.keys()][0] || null;
    renderDesks();
  }

  // A (re)connected console: the server's list of my live sessions is the truth. Desks it no longer lists ended
  // while this page was away; listed ones without a desk are claimed again for a fresh token (contract 5).
  function resumeDesks(sessions) {
    const listed = new Set(sessions.map((s) => s.session_id));
    for (const desk of desks.values()) if (!listed.has(desk.session_id)) endDesk(desk.session_id, "gone");
    if (shown === null) shown = savedDesks().shown;
    for (const session of sessions) {
      const desk = deskFor(session.session_id);
      Object.assign(desk, { queue: session.queue, pin: session.pin || desk.pin });
      if (!desk.frame) send({ type: "claim", session_id: session.session_id });
    }
    renderDesks();
  }

  function closeDesks() {
    for (const sessionId of [...desks.keys()]) dropDesk(sessionId);
    sessionStorage.removeItem(DESKS_KEY);
    restored = { names: {}, shown: null };
  }

  // ------------------------------------------------------------------------------------------- status

  function statusFrame() {
    const queues = $("queues").value.split(",").map((q) => q.trim()).filter(Boolean);
    const status = document.querySelector('input[name="status"]:checked').value;
    return { type: "status", status, queues, capacity: Number($("capacity").value) || 1 };
  }

  function showStatus(frame) {
    $(frame.status === "available" ? "st-available" : "st-away").checked = true;
    if (frame.queues && frame.queues.length) $("queues").value = frame.queues.join(", ");
    if (frame.capacity) $("capacity").value = frame.capacity;
    document.body.dataset.status = frame.status;
    renderRequests();
  }

  // ------------------------------------------------------------------------------------------- socket

  const handlers = {
    ready(frame) {
      signedIn = true;
      retryMs = 500;
      $("signin").hidden = true;
      $("console").hidden = false;
      $("who").hidden = false;
      $("agent-name").textContent = frame.name;
      setConn("connected", "ok");
      showStatus(frame);
      requests.clear();
      renderRequests();
      resumeDesks(frame.sessions || []);
    },
    status(frame) {
      showStatus(frame);
      if (frame.reason === "offer_timeout") notice("You did not answer an offer in time, so you were set to Away.");
      else notice(`You are ${frame.status}.`);
    },
    offer(frame) {
      requests.set(frame.session_id, { ...frame, receivedAt: Date.now() });
      renderRequests();
    },
    offer_revoked(frame) {
      dropRequest(frame.session_id, frame.reason);
    },
    claimed(frame) {
      openDesk(frame);
    },
    released(frame) {
      const desk = desks.get(frame.session_id);
      if (desk) remember(`Released ${desk.who}`);
      dropDesk(frame.session_id);
    },
    session_ended(frame) {
      endDesk(frame.session_id, frame.reason || "ended_in_sdk");
    },
    error(frame) {
      if (!signedIn) {
        $("signin-error").textContent = frame.message;
        return;
      }
      if (frame.session_id && desks.has(frame.session_id)
          && ["taken", "request_gone", "request_not_found", "not_claimed"].includes(frame.code)) {
        endDesk(frame.session_id, frame.code === "taken" ? "taken" : "gone"); // a desk resumed too late
        return;
      }
      if (frame.session_id && ["taken", "request_gone", "request_not_found"].includes(frame.code)) {
        dropRequest(frame.session_id, frame.code === "taken" ? "taken" : "ended");
        return;
      }
      if (frame.session_id) renderRequests(); // re-enable the claim button
      notice(frame.message);
    },
    replaced() {
      notice("This console was opened in another tab; this one stopped.");
    },
    pong() {},
  };

  function connect() {
    clearTimeout(retryTimer);
    setConn("connecting…", "wait");
    ws = new WebSocket(wsUrl("/ws/agent"));
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", api_key: keyStore.get(KEY) }));
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      const handler = handlers[frame.type];
      if (handler) handler(frame);
    };
    ws.onclose = (event) => {
      ws = null;
      if (event.code === 4401) {
        signOut(signedIn ? "Your API key is no longer accepted." : $("signin-error").textContent);
        return;
      }
      if (event.code === 4409 || !keyStore.get(KEY)) {
        setConn("stopped", "off");
        return;
      }
      setConn("reconnecting…", "wait");
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  function signOut(message) {
    keyStore.clear(KEY);
    signedIn = false;
    clearTimeout(retryTimer);
    if (ws) ws.close(1000);
    closeDesks();
    requests.clear();
    $("console").hidden = true;
    $("who").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("api-key").focus();
  }

  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    $("signin-error").textContent = "";
    keyStore.set(KEY, key);
    $("api-key").value = "";
    connect();
  });
  $("status-form").addEventListener("submit", (event) => {
    event.preventDefault();
    send(statusFrame());
  });
  for (const radio of document.querySelectorAll('input[name="status"]')) {
    radio.addEventListener("change", () => send(statusFrame()));
  }
  $("sign-out").addEventListener("click", () => signOut(""));
  setInterval(() => {
    for (const node of document.querySelectorAll("#requests .waited")) {
      const request = requests.get(node.closest("[data-session]").dataset.session);
      if (request) node.textContent = duration(waitedNow(request));
    }
    for (const node of document.querySelectorAll("#requests .expires")) {
      const request = requests.get(node.closest("[data-session]").dataset.session);
      const left = request.expires_in_s - (Date.now() - request.receivedAt) / 1000;
      node.textContent = ` · answer within ${duration(Math.max(0, left))}`;
    }
  }, 1000);

  savedDesks();
  renderDesks();
  if (keyStore.get(KEY)) connect();
  else renderRequests();
})();

// Agent console: one WebSocket (/ws/agent, frames in docs/api.md) brings offers; a claim opens the desk.
"use strict";

(() => {
  const { $, el, duration, keyStore, wsUrl } = window.cb;
  const KEY = "cobrowse-agent-key";
  const REVOKED = {
    taken: "taken by another agent",
    timeout: "offer timed out",
    cancelled: "cancelled by the customer",
    ended: "session ended",
    withdrawn: "withdrawn (you went away or stopped serving its queue)",
    away: "withdrawn (you were set away)",
    escalated: "moved to another queue",
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
    remember(`Request from ${request.customer_name || "a customer"}: ${REVOKED[reason] || reason}`);
  }

  // ------------------------------------------------------------------------------------------- desk

  function openDesk(frame) {
    const request = requests.get(frame.session_id) || {};
    requests.delete(frame.session_id);
    renderRequests();
    const who = request.customer_name || "customer";
    $("desk-info").textContent = `with ${who} · PIN ${frame.pin}`;
    $("leave").hidden = false;
    if (frame.desk_url) {
      $("desk").src = frame.desk_url;
      $("desk").hidden = false;
      $("desk-empty").hidden = true;
      remember(`Claimed ${who} (PIN ${frame.pin})`);
    } else {
      const problem = frame.token_error ? frame.token_error.message : "no desk link";
      $("desk-empty").replaceChildren(
        `Claimed, but the desk could not open: ${problem}. `,
        el("button", { class: "btn secondary small", type: "button",
                       onclick: () => send({ type: "claim", session_id: frame.session_id }) }, "Try again"));
    }
  }

  function closeDesk() {
    $("desk").hidden = true;
    $("desk").removeAttribute("src");
    $("desk-info").textContent = "";
    $("leave").hidden = true;
    $("desk-empty").hidden = false;
    $("desk-empty").textContent = "Claim a request to open the desk for its PIN.";
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
    error(frame) {
      if (!signedIn) {
        $("signin-error").textContent = frame.message;
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
    closeDesk();
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
  $("leave").addEventListener("click", closeDesk);
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

  if (keyStore.get(KEY)) connect();
  else renderRequests();
})();

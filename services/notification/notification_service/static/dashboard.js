// Supervisor dashboard: everything on it comes from GET /events (a snapshot, then live events; resumed with
// Last-Event-ID after a drop or a restart). Charts cover the last hour: at sign-in the page replays the stream's
// recent history (up to HISTORY events before the snapshot) to fill them.
"use strict";

(() => {
  const { $, el, duration, clock, keyStore } = window.cb;
  const KEY = "cobrowse-supervisor-key";
  const HOUR_S = 3600;
  const HISTORY = 5000;
  const FEED_MAX = 150;
  const ENDED_LINGER_S = 20;

  const view = {
    sessions: new Map(), // session_id -> {session_id, customer_name, queue, state, agent_id, since, ended_at}
    queues: new Map(), // name -> {queue, mode, no_agents}
    agents: new Map(), // agent_id -> {agent_id, name, status, queues, capacity}
    waiting: new Map(), // session_id -> {queue, at}
    claims: new Map(), // event id -> {at, waited}: wait times of claimed requests
    arrivals: new Map(), // event id -> at: requests queued
  };
  let stream = null;
  let renderQueued = false;

  const now = () => Date.now() / 1000;
  const short = (id) => (id ? String(id).slice(0, 8) : "—");
  const agentName = (id) => (view.agents.get(id) || {}).name || (id ? `agent ${short(id)}` : "");

  // ------------------------------------------------------------------------------------ applying frames

  function snapshot(frame) {
    for (const map of [view.sessions, view.queues, view.agents, view.waiting]) map.clear();
    for (const q of frame.queues || []) view.queues.set(q.queue, { queue: q.queue, mode: q.mode, no_agents: q.no_agents });
    for (const a of frame.agents || []) view.agents.set(a.agent_id, { ...a });
    for (const r of frame.sessions || []) {
      const at = Number(r.enqueued_at) || now();
      view.sessions.set(r.session_id, {
        session_id: r.session_id, customer_name: r.customer_name, queue: r.queue,
        state: r.state === "queued" ? "waiting" : r.state, agent_id: r.claimed_by || "", since: at,
      });
      if (r.state === "queued") view.waiting.set(r.session_id, { queue: r.queue, at });
    }
  }

  function ensureQueue(name) {
    if (name && !view.queues.has(name)) view.queues.set(name, { queue: name, mode: "", no_agents: false });
  }

  function sessionEvent(e) {
    const v = e.session;
    const row = view.sessions.get(v.session_id) || { session_id: v.session_id, agent_id: "", since: v.created_at };
    // The registry says "waiting" until the agent's desk joins; a claim is newer news than that.
    const keepClaimed = row.state === "claimed" && v.state === "waiting";
    Object.assign(row, { customer_name: v.customer_name, queue: v.queue, state: keepClaimed ? "claimed" : v.state });
    if (v.state === "ended") {
      row.ended_at = e.at;
      view.waiting.delete(v.session_id);
    }
    view.sessions.set(v.session_id, row);
    ensureQueue(v.queue);
  }

  function queueEvent(e, id) {
    ensureQueue(e.queue);
    const row = view.sessions.get(e.session_id);
    if (e.type === "queued") {
      view.waiting.set(e.session_id, { queue: e.queue, at: e.at });
      view.arrivals.set(id, e.at);
      if (row && row.state !== "ended") row.state = "waiting";
    } else if (e.type === "claimed") {
      view.waiting.delete(e.session_id);
      view.claims.set(id, { at: e.at, waited: e.data.waited_s || 0 });
      if (row) {
        row.agent_id = e.agent_id;
        if (row.state === "waiting") row.state = "claimed";
      }
    } else if (e.type === "left") {
      view.waiting.delete(e.session_id);
    } else if (e.type === "no_agents" || e.type === "agents_available") {
      view.queues.get(e.queue).no_agents = e.type === "no_agents";
    }
  }

  function agentEvent(e) {
    const agent = view.agents.get(e.agent_id) || { agent_id: e.agent_id, name: "", queues: [], capacity: 1 };
    if (e.type === "disconnected") agent.status = "offline";
    else if (e.status) agent.status = e.status;
    if (e.queues && e.queues.length) agent.queues = e.queues;
    if (e.data && e.data.capacity) agent.capacity = e.data.capacity;
    if (e.data && e.data.name) agent.name = e.data.name;
    view.agents.set(e.agent_id, agent);
  }

  // Charts only: history from before the snapshot must not change the live state the snapshot gave.
  function historyFrame(frame) {
    if (frame.type !== "event" || frame.kind !== "queue") return;
    const e = frame.event;
    if (e.type === "queued") view.arrivals.set(frame.id, e.at);
    if (e.type === "claimed") view.claims.set(frame.id, { at: e.at, waited: e.data.waited_s || 0 });
  }

  function describe(frame) {
    const e = frame.event;
    if (frame.kind === "session") {
      const v = e.session;
      const extra = e.type === "ended" && v.ended_reason ? ` (${v.ended_reason})` : "";
      return `Session ${short(v.session_id)}${v.customer_name ? ` · ${v.customer_name}` : ""}: ` +
        `${e.type.replace(/_/g, " ")}${e.type === v.state ? "" : ` → ${v.state}`}${extra}`;
    }
    if (frame.kind === "queue") {
      const who = e.agent_id ? ` · ${agentName(e.agent_id)}` : "";
      const waited = e.type === "claimed" && e.data.waited_s !== undefined ? ` after ${duration(e.data.waited_s)}` : "";
      const target = e.session_id ? ` session ${short(e.session_id)}` : "";
      return `Queue ${e.queue}: ${e.type.replace(/_/g, " ")}${target}${who}${waited}`;
    }
    return `Agent ${agentName(e.agent_id)}: ${e.type}${e.status ? ` (${e.status})` : ""}`;
  }

  function feed(frame, older) {
    const list = $("feed");
    const item = el("li", { "data-type": `${frame.kind}.${frame.event.type}` },
      el("time", {}, clock(frame.event.at)),
      el("span", { class: "kind" }, `${frame.kind} · ${frame.event.type}`),
      el("span", {}, describe(frame)));
    if (older) list.append(item);
    else list.prepend(item);
    while (list.children.length > FEED_MAX) list.lastElementChild.remove();
  }

  function onFrame(frame, lastId) {
    if (frame.type === "snapshot") {
      snapshot(frame);
      backfill(frame.id);
    } else if (frame.type === "event") {
      const e = frame.event;
      if (frame.kind === "session") sessionEvent(e);
      else if (frame.kind === "queue") queueEvent(e, frame.id);
      else if (frame.kind === "agent") agentEvent(e);
      feed(frame, false);
    }
    $("last-id").textContent = lastId !== null ? `event #${lastId}` : "";
    scheduleRender();
  }

  async function backfill(snapshotId) {
    const fromId = Math.max(0, snapshotId - HISTORY);
    if (snapshotId <= fromId) return;
    const older = [];
    try {
      await window.cbStream.replay("/events?type=queued,claimed", keyStore.get(KEY), fromId, snapshotId, (frame) => {
        historyFrame(frame);
        if (frame.type === "event" && now() - frame.event.at < HOUR_S) older.push(frame);
      });
    } catch (error) {
      console.warn("history unavailable", error.message);
    }
    for (const frame of older.reverse().slice(0, FEED_MAX)) feed(frame, true);
    scheduleRender();
  }

  // ------------------------------------------------------------------------------------ rendering

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }

  function load(agentId) {
    let n = 0;
    for (const s of view.sessions.values()) if (s.agent_id === agentId && s.state !== "ended") n += 1;
    return n;
  }

  function agentStatus(agent) {
    if (agent.status === "available" && load(agent.agent_id) >= (agent.capacity || 1)) return "busy";
    return agent.status || "offline";
  }

  function renderSessions(t) {
    for (const [id, s] of view.sessions) if (s.ended_at && t - s.ended_at > ENDED_LINGER_S) view.sessions.delete(id);
    const rows = [...view.sessions.values()].sort((a, b) => a.since - b.since);
    $("sessions").replaceChildren(...rows.map((s) => el("tr", { "data-session": s.session_id, "data-state": s.state },
      el("td", {}, el("code", {}, short(s.session_id))),
      el("td", {}, s.customer_name || "—"),
      el("td", {}, s.queue),
      el("td", {}, el("span", { class: `state ${s.state}` }, s.state)),
      el("td", {}, s.agent_id ? agentName(s.agent_id) : "—"),
      el("td", { class: "num" }, duration(t - s.since)))));
    $("no-sessions").hidden = rows.length > 0;
    const counts = {};
    for (const s of rows) counts[s.state] = (counts[s.state] || 0) + 1;
    $("session-states").textContent = Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(" · ");
    $("kpi-active").textContent = String((counts.active || 0) + (counts.claimed || 0) + (counts.reconnecting || 0));
  }

  function renderQueues(t) {
    let longestAll = 0;
    const rows = [...view.queues.values()].sort((a, b) => a.queue.localeCompare(b.queue)).map((q) => {
      const waits = [...view.waiting.values()].filter((w) => w.queue === q.queue).map((w) => t - w.at);
      const longest = Math.max(0, ...waits);
      longestAll = Math.max(longestAll, longest);
      const serving = [...view.agents.values()].filter((a) => (a.queues || []).includes(q.queue));
      const available = serving.filter((a) => agentStatus(a) === "available").length;
      const busy = serving.filter((a) => agentStatus(a) === "busy").length;
      return el("tr", { "data-queue": q.queue },
        el("th", { scope: "row" }, q.queue, q.mode ? el("span", { class: "muted" }, ` ${q.mode}`) : null),
        el("td", { class: "num" }, String(waits.length)),
        el("td", { class: "num" }, waits.length ? duration(longest) : "—"),
        el("td", { class: "num", title: `${available} available, ${busy} busy` },
          q.no_agents && waits.length ? el("span", { class: "state ended" }, "none") : `${available} / ${busy}`));
    });
    $("queues").replaceChildren(...rows);
    $("kpi-waiting").textContent = String(view.waiting.size);
    $("kpi-longest").textContent = duration(longestAll);
  }

  function renderAgents() {
    const agents = [...view.agents.values()].sort((a, b) => (a.name || a.agent_id).localeCompare(b.name || b.agent_id));
    $("agents").replaceChildren(...agents.map((a) => {
      const status = agentStatus(a);
      return el("tr", { "data-agent": a.agent_id },
        el("td", {}, a.name || short(a.agent_id)),
        el("td", {}, el("span", { class: `state ${status}` }, status)),
        el("td", {}, (a.queues || []).join(", ") || "—"),
        el("td", { class: "num" }, `${load(a.agent_id)}/${a.capacity || 1}`));
    }));
    $("no-agents").hidden = agents.length > 0;
    $("kpi-agents").textContent = String(agents.filter((a) => agentStatus(a) === "available").length);
  }

  function renderCharts(t) {
    for (const [id, c] of view.claims) if (t - c.at > HOUR_S) view.claims.delete(id);
    for (const [id, at] of view.arrivals) if (t - at > HOUR_S) view.arrivals.delete(id);
    const claims = [...view.claims.values()];
    const arrivals = [...view.arrivals.values()];
    const buckets = window.cbCharts.buckets(t, HOUR_S, 12);
    const median = (xs) => {
      if (!xs.length) return 0;
      const sorted = [...xs].sort((a, b) => a - b);
      return sorted[Math.floor((sorted.length - 1) / 2)];
    };
    const inBucket = (b, at) => at >= b.start && at < b.end;
    const allWaits = claims.map((c) => c.waited);
    window.cbCharts.draw($("wait-chart"), buckets.map((b) => {
      const waits = claims.filter((c) => inBucket(b, c.at)).map((c) => c.waited);
      return { label: b.label, bar: median(waits), line: waits.length ? Math.max(...waits) : 0 };
    }), {
      format: (v) => duration(v),
      caption: allWaits.length
        ? `Bars: median wait per 5 minutes; line: longest. ${allWaits.length} claimed, median ${duration(median(allWaits))}.`
        : "No request was claimed in the last hour.",
    });
    window.cbCharts.draw($("thru-chart"), buckets.map((b) => ({
      label: b.label,
      bar: claims.filter((c) => inBucket(b, c.at)).length,
      line: arrivals.filter((at) => inBucket(b, at)).length,
    })), {
      format: (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)),
      caption: `Bars: requests claimed per 5 minutes (${claims.length} in the hour); line: requests queued ` +
        `(${arrivals.length}).`,
    });
    $("kpi-claimed").textContent = String(claims.length);
  }

  function render() {
    const t = now();
    renderSessions(t);
    renderQueues(t);
    renderAgents();
    renderCharts(t);
  }

  // ------------------------------------------------------------------------------------ session

  function setState(state, detail) {
    const pill = $("stream-state");
    if (state === "live") {
      pill.textContent = detail !== null ? "live · resumed" : "live";
      pill.dataset.kind = "ok";
    } else if (state === "reconnecting") {
      pill.textContent = "reconnecting…";
      pill.dataset.kind = "wait";
    } else if (state === "denied") {
      signOut(`Sign-in refused: ${detail}`);
    }
  }

  function signIn() {
    $("signin").hidden = true;
    $("dash").hidden = false;
    $("who").hidden = false;
    stream = window.cbStream.follow("/events", keyStore.get(KEY), { onFrame, onState: setState });
    render();
  }

  function signOut(message) {
    if (stream) stream.close();
    stream = null;
    keyStore.clear(KEY);
    $("dash").hidden = true;
    $("who").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
  }

  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    keyStore.set(KEY, key);
    $("api-key").value = "";
    $("signin-error").textContent = "";
    signIn();
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  setInterval(() => {
    if (!$("dash").hidden) scheduleRender();
  }, 1000);

  if (keyStore.get(KEY)) signIn();
})();

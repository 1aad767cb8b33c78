// Server-Sent Events over fetch: unlike EventSource it can send the API key as a header and pick the
// Last-Event-ID to resume from, so a dashboard carries on after a dropped connection or a server restart
// with exactly the events it missed (the server replays them from JetStream).
"use strict";

window.cbStream = (() => {
  // Yields {id, frame} for each SSE message of a response body; comments (keepalives) are skipped.
  async function* messages(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let id = null;
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("id:")) id = line.slice(3).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) yield { id: id === null ? null : Number(id), frame: JSON.parse(data.join("\n")) };
      }
    }
  }

  // A `dropped` frame names the last event the server actually sent (`last_id`; older servers: `last_event_id`).
  // The client resumes from there at once, even if the server leaves the response open (a stalled replay).
  function droppedAt(frame) {
    if (frame.type !== "dropped") return undefined;
    const id = frame.last_id !== undefined ? frame.last_id : frame.last_event_id;
    return id === undefined ? null : id;
  }

  async function request(url, apiKey, lastId, signal) {
    const headers = { Authorization: `Bearer ${apiKey}`, Accept: "text/event-stream" };
    if (lastId !== null && lastId !== undefined) headers["Last-Event-ID"] = String(lastId);
    const response = await fetch(url, { headers, signal, cache: "no-store" });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response;
  }

  /**
   * Follow the stream until close(): onFrame(frame, id) for every message, onState(state, detail) with
   * "live" | "reconnecting" | "denied". Reconnects with the last id it saw, backing off up to 5 s.
   */
  function follow(url, apiKey, { onFrame, onState }) {
    let lastId = null;
    let closed = false;
    let controller = null;
    let retryMs = 500;

    (async () => {
      while (!closed) {
        controller = new AbortController();
        let dropped = false;
        try {
          const response = await request(url, apiKey, lastId, controller.signal);
          onState("live", lastId);
          retryMs = 500;
          for await (const { id, frame } of messages(response.body)) {
            if (id !== null) lastId = id;
            const resumeAt = droppedAt(frame);
            if (resumeAt !== undefined) {
              if (resumeAt !== null) lastId = resumeAt;
              dropped = true;
            }
            onFrame(frame, lastId);
            if (dropped) break;
          }
        } catch (error) {
          if (closed) return;
          if (error.status === 401 || error.status === 403) {
            onState("denied", error.message);
            return;
          }
        }
        controller.abort();
        if (closed) return;
        onState("reconnecting", lastId);
        if (dropped) continue; // the server asked for it: no backoff
        await new Promise((resolve) => setTimeout(resolve, retryMs * (0.75 + Math.random() / 2)));
        retryMs = Math.min(retryMs * 2, 5000);
      }
    })();

    return {
      close() {
        closed = true;
        if (controller) controller.abort();
      },
    };
  }

  /** Replay events after `fromId` up to `toId` (the history before a snapshot), then stop. */
  async function replay(url, apiKey, fromId, toId, onFrame, idleMs = 1500) {
    let from = fromId;
    for (let attempt = 0; attempt < 5 && from < toId; attempt += 1) {
      const resumeAt = await replayOnce(url, apiKey, from, toId, onFrame, idleMs);
      if (resumeAt === null) return;
      from = resumeAt; // dropped mid-replay: carry on after the last event the server sent
    }
  }

  // Returns the id to resume from when the server dropped the replay, else null.
  async function replayOnce(url, apiKey, fromId, toId, onFrame, idleMs) {
    const controller = new AbortController();
    let idle = setTimeout(() => controller.abort(), idleMs * 2);
    let last = fromId;
    try {
      const response = await request(url, apiKey, fromId, controller.signal);
      for await (const { id, frame } of messages(response.body)) {
        clearTimeout(idle);
        const resumeAt = droppedAt(frame);
        if (resumeAt !== undefined) return resumeAt === null ? last : resumeAt;
        if (id !== null && id > toId) break;
        if (id !== null) last = id;
        onFrame(frame);
        if (id !== null && id >= toId) break;
        idle = setTimeout(() => controller.abort(), idleMs); // filtered replays may end before toId
      }
    } catch (error) {
      if (error.name !== "AbortError") throw error;
    } finally {
      clearTimeout(idle);
      controller.abort();
    }
    return null;
  }

  return { follow, replay };
})();

// Small helpers shared by the agent console and the supervisor dashboard (no framework, no build step).
"use strict";

window.cb = (() => {
  const $ = (id) => document.getElementById(id);

  // Build an element: el("li", {class: "x", "data-id": 1}, "text", child, ...).
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
  }

  function clock(epochSeconds) {
    return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  // The API key lives in sessionStorage: it survives a reload of this tab and nothing else.
  const keyStore = {
    get: (name) => sessionStorage.getItem(name) || "",
    set: (name, value) => sessionStorage.setItem(name, value),
    clear: (name) => sessionStorage.removeItem(name),
  };

  function wsUrl(path) {
    return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
  }

  return { $, el, duration, clock, keyStore, wsUrl };
})();

// Simulated agent desk: shows the PIN and the agent the token was issued to. The token is never displayed.
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  document.getElementById("pin").textContent = params.get("pin") || "—";
  try {
    const payload = params.get("access_token").split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0)); // names may be any UTF-8
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    const expires = new Date(claims.exp * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    document.getElementById("agent").textContent = `Agent ${claims.user_name} · token valid until ${expires}`;
  } catch (error) {
    document.getElementById("agent").textContent = "No agent token in this link";
  }
})();

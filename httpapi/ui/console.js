// srdd's web console: plain JavaScript, no dependencies, nothing fetched
// but this node's own API. The token lives in this tab's sessionStorage
// and travels only in the Authorization header, never in a URL.
"use strict";

const TOKEN_KEY = "srdd.token";
let token = sessionStorage.getItem(TOKEN_KEY); // null: not logged in; "": no token (node without auth)
let timer = null;

// el builds an element; strings become text nodes (never HTML).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api calls this node's API with the token; it throws APIError on a non-2xx.
async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    headers["X-Requested-By"] = "srdd-console";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let data = null;
  const text = await r.text();
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  if (!r.ok) {
    const err = data && data.error ? data.error : {};
    if (r.status === 401 && path !== "/v1/cluster") showLogin("The node asks for credentials: " + (err.message || "401"));
    throw new APIError(r.status, err.code || String(r.status), err.message || ("HTTP " + r.status));
  }
  return data;
}

function enc(s) { return encodeURIComponent(s); }

function setStatus(msg, bad) {
  const s = document.getElementById("status");
  s.textContent = msg || "";
  s.className = bad ? "error" : "muted";
}

function age(ms) {
  if (!ms) return "never";
  let s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return s + " s ago";
  s = Math.round(s / 60);
  if (s < 120) return s + " min ago";
  return Math.round(s / 60) + " h ago";
}

function showLogin(msg) {
  document.getElementById("login").hidden = false;
  document.getElementById("page").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("login-error").textContent = msg || "";
}

async function login(tok) {
  const saved = token;
  token = tok;
  try {
    await api("GET", "/v1/cluster");
  } catch (e) {
    token = saved;
    document.getElementById("login-error").textContent =
      e.status === 401 ? "The node did not accept this token." : ("Cannot reach the node: " + e.message);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, tok);
  document.getElementById("token").value = "";
  document.getElementById("login").hidden = true;
  document.getElementById("page").hidden = false;
  document.getElementById("logout").hidden = false;
  document.getElementById("who").textContent = tok ? "logged in with a token" : "no token";
  render();
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  document.getElementById("who").textContent = "";
  showLogin("");
}

// ---- pages ----

function page(title, ...children) {
  const p = document.getElementById("page");
  p.replaceChildren(el("h1", { text: title }), ...children);
  return p;
}

function errorLine(e) {
  return el("p", { class: "error" }, e.message + (e.code ? " (" + e.code + ")" : ""));
}

function table(id, headers, rows) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, headers.map(h => el("th", { text: h })))),
    el("tbody", {}, rows));
}

async function rddsPage() {
  const holder = el("div", { id: "rdds" });
  page("Shared RDDs", holder);
  const refresh = async () => {
    let list, owners = {};
    try {
      list = (await api("GET", "/v1/rdds")).rdds || [];
    } catch (e) {
      holder.replaceChildren(errorLine(e));
      return;
    }
    try {
      for (const s of (await api("GET", "/sessions?size=1000")).sessions || []) owners[s.id] = s.owner;
    } catch (_) { /* owners stay blank without session access */ }
    const rows = list.map(r => {
      const load = r.load && r.state === "loading"
        ? el("span", {}, el("progress", { max: "100", value: String(r.load.percent || 0) }), " " + Math.round(r.load.percent || 0) + "%")
        : (r.load ? el("span", { class: "muted" }, "last load: " + r.load.state) : "");
      return el("tr", { "data-rdd": r.name },
        el("td", {}, el("a", { href: "#/rdd/" + enc(r.name) }, r.name)),
        el("td", { text: r.mode }), el("td", { text: r.state, title: r.last_error || "" }),
        el("td", { class: "num", text: r.keys === null || r.keys === undefined ? "?" : String(r.keys) }),
        el("td", { text: owners[r.session] || "" }),
        el("td", { text: r.mode === "durable" ? age(r.checkpoint && r.checkpoint.at) : "—" }),
        el("td", {}, copiesCell(r)),
        el("td", {}, load));
    });
    holder.replaceChildren(
      list.length ? table("rdds-table", ["name", "mode", "state", "keys", "owner", "checkpoint", "copies", "load"], rows)
        : el("p", { class: "muted", id: "rdds-empty" }, "No shared RDDs yet."),
      el("p", { class: "muted" }, "Refreshed " + new Date().toLocaleTimeString() + "; every 2 s."));
  };
  await refresh();
  timer = setInterval(refresh, 2000);
}

// copiesText is "copies that exist / copies wanted".
function copiesText(r) {
  return (r.copies || []).length + " of " + (r.replicas || 1) + (r.under_replicated ? " (under-replicated)" : "");
}

// copyText describes one copy of r: its node and role, the log index it
// applied and its lag behind r's last write (where the answering node
// knows them), and its last checkpoint's index.
function copyText(r) {
  return c => {
    const parts = [];
    if (c.role) parts.push(c.role);
    if (c.applied_index) {
      parts.push("applied " + c.applied_index);
      if (r.last_write_index) parts.push("lag " + Math.max(r.last_write_index - c.applied_index, 0));
    }
    if (c.checkpoint_index) parts.push("checkpoint " + c.checkpoint_index);
    return c.node + (parts.length ? " (" + parts.join(", ") + ")" : "");
  };
}

// copiesCell shows an RDD's copies, and in red why it is at risk.
function copiesCell(r) {
  const cell = el("span", { text: (r.copies || []).length + "/" + (r.replicas || 1) });
  if (r.at_risk) cell.append(" ", el("span", { class: "error at-risk", title: "losing one machine would lose acknowledged writes" }, "at risk: " + r.at_risk));
  return cell;
}

async function rddPage(name) {
  const info = el("div", { class: "card", id: "rdd-info" });
  const lookupOut = el("div", { id: "lookup-result" });
  const keyIn = el("input", { id: "lookup-key", placeholder: "key", "aria-label": "key" });
  const lookup = el("form", { class: "row", id: "lookup-form", onsubmit: async ev => {
    ev.preventDefault();
    try {
      const v = await api("GET", "/v1/rdds/" + enc(name) + "/keys/" + enc(keyIn.value));
      lookupOut.replaceChildren(el("pre", { id: "lookup-value" }, JSON.stringify(v.value, null, 2)));
    } catch (e) {
      lookupOut.replaceChildren(errorLine(e));
    }
  } }, keyIn, el("button", { type: "submit", id: "lookup-button" }, "Look up"));

  const prefixIn = el("input", { id: "scan-prefix", placeholder: "prefix (empty: all)", "aria-label": "prefix" });
  const limitIn = el("input", { id: "scan-limit", type: "number", min: "1", value: "20", class: "narrow", "aria-label": "page size" });
  const scanOut = el("div", { id: "scan-result" });
  let cursors = []; // cursors of the pages shown so far; "" is the first
  const scan = async (cursor) => {
    let q = "?prefix=" + enc(prefixIn.value) + "&limit=" + enc(limitIn.value || "20");
    if (cursor) q += "&cursor=" + enc(cursor);
    try {
      const res = await api("GET", "/v1/rdds/" + enc(name) + "/scan" + q);
      const rows = (res.items || []).map(it => el("tr", {}, el("td", { text: it.key }), el("td", {}, el("code", { text: JSON.stringify(it.value) }))));
      const nav = el("div", { class: "row" });
      if (cursors.length > 1) nav.append(el("button", { type: "button", id: "scan-prev", onclick: () => { cursors.pop(); scan(cursors[cursors.length - 1]); } }, "Previous page"));
      if (res.cursor) nav.append(el("button", { type: "button", id: "scan-next", onclick: () => { cursors.push(res.cursor); scan(res.cursor); } }, "Next page"));
      scanOut.replaceChildren(
        rows.length ? table("scan-table", ["key", "value"], rows) : el("p", { class: "muted" }, "No keys with this prefix."),
        el("p", { class: "muted" }, "Page " + cursors.length + (res.cursor ? "; more follow." : "; the last.")), nav);
    } catch (e) {
      scanOut.replaceChildren(errorLine(e));
    }
  };
  const scanForm = el("form", { class: "row", id: "scan-form", onsubmit: ev => { ev.preventDefault(); cursors = [""]; scan(""); } },
    prefixIn, limitIn, el("button", { type: "submit", id: "scan-button" }, "Scan"));

  page("Shared RDD " + name, info, el("h2", { text: "Key lookup" }), lookup, lookupOut,
    el("h2", { text: "Prefix scan" }), scanForm, scanOut);
  try {
    const r = await api("GET", "/v1/rdds/" + enc(name));
    const rows = [["mode", r.mode], ["state", r.state], ["keys", r.keys], ["session", r.session], ["node", r.node],
      ["created", r.created_at ? new Date(r.created_at).toLocaleString() : ""],
      ["checkpoint", r.checkpoint ? "index " + r.checkpoint.index + ", " + age(r.checkpoint.at) : (r.mode === "durable" ? "none yet" : "—")]];
    rows.push(["copies", copiesText(r) + ((r.copies || []).length ? " on " + r.copies.map(copyText(r)).join(", ") : "")]);
    if (r.at_risk) rows.push(["at risk", r.at_risk]);
    if (r.load) rows.push(["load", r.load.state + " " + Math.round(r.load.percent || 0) + "% (" + r.load.rows + " rows)"]);
    if (r.message) rows.push(["message", r.message]);
    if (r.last_error) rows.push(["last error", r.last_error]);
    if (r.next_attempt_at) rows.push(["next attempt", new Date(r.next_attempt_at).toLocaleString()]);
    info.replaceChildren(el("div", { class: "kv" }, rows.map(([k, v]) => [el("span", { class: "muted", text: k }), el("span", { text: v === null || v === undefined ? "?" : String(v) })])));
  } catch (e) {
    info.replaceChildren(errorLine(e));
  }
}

async function sessionsPage() {
  const holder = el("div", { id: "sessions" });
  const create = el("button", { type: "button", id: "new-session", onclick: async () => {
    try {
      const s = await api("POST", "/sessions", { kind: "pyspark" });
      location.hash = "#/session/" + s.id;
    } catch (e) { setStatus(e.message, true); }
  } }, "Start a PySpark session");
  page("Sessions", el("div", { class: "row" }, create), holder);
  try {
    const list = (await api("GET", "/sessions?size=1000")).sessions || [];
    holder.replaceChildren(list.length
      ? table("sessions-table", ["id", "name", "owner", "state", "kind", "node"], list.map(s => el("tr", {},
        el("td", {}, el("a", { href: "#/session/" + s.id }, String(s.id))),
        el("td", { text: s.name || "" }), el("td", { text: s.owner || "" }), el("td", { text: s.state }),
        el("td", { text: s.kind }), el("td", { text: s.node || "" }))))
      : el("p", { class: "muted" }, "No sessions."));
  } catch (e) {
    holder.replaceChildren(errorLine(e));
  }
}

// output renders a Livy statement output: text, JSON, a table or an image.
function output(o) {
  if (!o) return el("p", { class: "muted" }, "no output yet");
  if (o.status === "error") {
    return el("pre", { class: "error" }, (o.ename || "error") + ": " + (o.evalue || "") + "\n" + (o.traceback || []).join(""));
  }
  const d = o.data || {};
  const parts = [];
  if (d["image/png"]) parts.push(el("img", { class: "output", alt: "statement output", src: "data:image/png;base64," + d["image/png"] }));
  const t = d["application/vnd.livy.table.v1+json"];
  if (t && Array.isArray(t.headers)) {
    parts.push(table(null, t.headers.map(h => h.name), (t.data || []).map(row => el("tr", {}, row.map(c => el("td", { text: typeof c === "object" ? JSON.stringify(c) : String(c) }))))));
  }
  if (d["application/json"] !== undefined) parts.push(el("pre", { class: "json" }, JSON.stringify(d["application/json"], null, 2)));
  if (!parts.length && d["text/plain"] !== undefined) parts.push(el("pre", {}, d["text/plain"]));
  return el("div", { class: "output" }, parts);
}

// connectStreams renders GET /sessions/{id}/spark-connect: a row per open
// Spark Connect stream (call) of the session, on the node that runs it.
function connectStreams(c) {
  if (!c.enabled) return el("p", { class: "muted" }, "Node " + c.node + " serves no Spark Connect (srdd server --connect-addr).");
  if (!c.streams.length) return el("p", { class: "muted" }, "No Spark Connect stream open.");
  return table("connect-table", ["method", "principal", "via", "open for", "bytes in", "bytes out", "rows"], c.streams.map(s => el("tr", {},
    el("td", { text: s.method }), el("td", { text: s.principal || "" }), el("td", { text: s.via || "" }),
    el("td", { text: s.seconds.toFixed(1) + " s" }), el("td", { text: String(s.bytes_in) }),
    el("td", { text: String(s.bytes_out) }), el("td", { text: String(s.rows) }))));
}

async function sessionPage(id) {
  const info = el("div", { class: "card", id: "session-info" });
  const streams = el("div", { id: "connect-streams" });
  const list = el("div", { id: "statements" });
  const code = el("textarea", { id: "code", "aria-label": "code" }, "1 + 1");
  const kind = el("select", { id: "kind", "aria-label": "kind" }, ["pyspark", "sql"].map(k => el("option", { value: k }, k)));
  const refresh = async () => {
    try {
      const s = await api("GET", "/sessions/" + enc(id));
      info.replaceChildren(el("div", { class: "kv" }, [["state", s.state], ["kind", s.kind], ["owner", s.owner || ""], ["node", s.node || ""], ["name", s.name || ""]]
        .map(([k, v]) => [el("span", { class: "muted", text: k }), el("span", { text: String(v) })])));
      const sts = (await api("GET", "/sessions/" + enc(id) + "/statements?order=desc&size=20")).statements || [];
      list.replaceChildren(...sts.map(st => el("div", { class: "card statement", "data-statement": String(st.id) },
        el("div", { class: "muted" }, "#" + st.id + " — " + st.state),
        el("pre", { class: "code" }, st.code), output(st.output))));
    } catch (e) {
      info.replaceChildren(errorLine(e));
    }
    try { // apart: a node without the route must not blank the page
      streams.replaceChildren(connectStreams(await api("GET", "/sessions/" + enc(id) + "/spark-connect")));
    } catch (e) {
      streams.replaceChildren(errorLine(e));
    }
  };
  const form = el("form", { id: "statement-form", onsubmit: async ev => {
    ev.preventDefault();
    try {
      const st = await api("POST", "/sessions/" + enc(id) + "/statements", { code: code.value, kind: kind.value });
      await refresh();
      await api("GET", "/sessions/" + enc(id) + "/statements/" + st.id + "?wait=30");
      await refresh();
    } catch (e) { setStatus(e.message, true); }
  } }, code, el("div", { class: "row" }, kind, el("button", { type: "submit", id: "run" }, "Run")));
  page("Session " + id, info, el("h2", { text: "Spark Connect streams" }), streams,
    el("h2", { text: "Run code" }), form, el("h2", { text: "Statements (newest first)" }), list);
  await refresh();
  timer = setInterval(refresh, 3000);
}

async function batchesPage() {
  const holder = el("div", { id: "batches" });
  page("Batches", holder);
  try {
    const res = await api("GET", "/batches?size=1000");
    const list = res.sessions || res.batches || [];
    holder.replaceChildren(list.length
      ? table("batches-table", ["id", "name", "owner", "state", "appId"], list.map(b => el("tr", {},
        el("td", { text: String(b.id) }), el("td", { text: b.name || "" }), el("td", { text: b.owner || "" }),
        el("td", { text: b.state }), el("td", { text: b.appId || "" }))))
      : el("p", { class: "muted", id: "batches-empty" }, "No batches."));
  } catch (e) {
    if (e.status === 404) {
      holder.replaceChildren(el("p", { class: "muted", id: "batches-missing" }, "This node does not serve Livy batches (/batches) yet."));
    } else {
      holder.replaceChildren(errorLine(e));
    }
  }
}

async function clusterPage() {
  const holder = el("div", { id: "cluster" });
  page("Cluster", holder);
  const refresh = async () => {
    let c;
    try {
      c = await api("GET", "/v1/cluster");
    } catch (e) {
      holder.replaceChildren(errorLine(e));
      return;
    }
    let ready = "?";
    try {
      const r = await fetch("/readyz", { cache: "no-store" });
      const b = await r.json();
      ready = b.status + (b.waiting_for ? " (waiting for " + b.waiting_for.join(", ") + ")" : "");
    } catch (_) { /* keep "?" */ }
    const kv = [["this node", c.node], ["leader", c.leader || "none"], ["raft state", c.state], ["term", c.term],
      ["commit index", c.commit_index], ["applied index", c.applied_index], ["last contact", c.last_contact], ["this node's readiness", ready]];
    holder.replaceChildren(
      el("div", { class: "card kv", id: "cluster-info" }, kv.map(([k, v]) => [el("span", { class: "muted", text: k }), el("span", { text: String(v) })])),
      el("h2", { text: "Members" }),
      table("members-table", ["id", "status", "suffrage", "leader", "http", "raft", "sessions", "shared RDDs"], (c.members || []).map(m => el("tr", {},
        el("td", { text: m.id }), el("td", { class: m.status === "up" ? "ok" : "error", text: m.status }), el("td", { text: m.suffrage }),
        el("td", { text: m.leader ? "leader" : "" }), el("td", { text: m.http_addr }), el("td", { text: m.raft_addr }),
        el("td", { text: (m.sessions || []).join(", ") }), el("td", { text: (m.rdds || []).join(", ") })))));
  };
  await refresh();
  timer = setInterval(refresh, 3000);
}

// ---- routing ----

async function render() {
  if (timer) { clearInterval(timer); timer = null; }
  setStatus("");
  if (token === null) { showLogin(""); return; }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const name = parts[0] || "rdds";
  for (const a of document.querySelectorAll("#nav a[data-page]")) {
    const p = a.getAttribute("data-page");
    a.classList.toggle("active", p === name || (p === "rdds" && name === "rdd") || (p === "sessions" && name === "session"));
  }
  document.body.setAttribute("data-page", name);
  switch (name) {
    case "rdd": return rddPage(parts.slice(1).join("/"));
    case "sessions": return sessionsPage();
    case "session": return sessionPage(parts[1]);
    case "batches": return batchesPage();
    case "cluster": return clusterPage();
    default: return rddsPage();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", ev => {
    ev.preventDefault();
    login(document.getElementById("token").value.trim());
  });
  document.getElementById("anon-button").addEventListener("click", () => login(""));
  document.getElementById("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", () => { if (token !== null) render(); });
  if (token === null) {
    showLogin("");
  } else {
    document.getElementById("logout").hidden = false;
    document.getElementById("who").textContent = token ? "logged in with a token" : "no token";
    render();
  }
});

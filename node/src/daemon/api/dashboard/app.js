// The skrei dashboard: plain scripts, no framework. Every request goes to
// this node's API with the session cookie; changes also carry the
// session's secret from the page's meta tag (see dashboard.rs).
"use strict";

const meta = document.querySelector('meta[name="skrei-session"]');
const SECRET = meta.content;
const SECRET_HEADER = meta.dataset.header;
const page = document.getElementById("page");
const statusLine = document.getElementById("status");
let changes = 0;
let route = "";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch (_) { body = { error: text }; }
  if (!response.ok) {
    const error = new Error(body.error || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

function stateCell(state) {
  const name = typeof state === "string" ? state : Object.keys(state || {})[0] || "?";
  return el("td", { class: "state-" + name }, name);
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows));
}

async function showJobs() {
  const filter = sessionStorage.getItem("stateFilter") || "";
  const { jobs } = await api("/api/v1/jobs?limit=200");
  const states = Array.from(new Set(jobs.map((j) => j.state))).sort();
  const select = el("select", { id: "state-filter", onchange: (e) => {
    sessionStorage.setItem("stateFilter", e.target.value); render();
  } }, el("option", { value: "" }, "all"), states.map((s) => el("option", { value: s }, s)));
  select.value = filter;
  const shown = jobs.filter((j) => !filter || j.state === filter);
  page.replaceChildren(
    el("h2", {}, "Jobs"),
    el("label", { for: "state-filter" }, "State"), select,
    table(["Job", "Name", "Engine", "Network", "State", "Submitted", "Executions"],
      shown.map((j) => el("tr", { "data-job": j.job_id },
        el("td", {}, el("a", { href: "#/jobs/" + j.job_id }, j.job_id.slice(0, 16) + "…")),
        el("td", {}, j.name || ""), el("td", {}, j.engine), el("td", {}, j.network),
        stateCell(j.state), el("td", {}, when(j.submitted_at_ms)), el("td", {}, j.executions)))),
    shown.length ? "" : el("p", {}, "No jobs yet: submit one."));
}

function networkLog(text) {
  const records = text.split("\n").filter((l) => l.trim()).map((l) => {
    try { return JSON.parse(l); } catch (_) { return null; }
  }).filter(Boolean);
  return table(["Time", "Method", "Host", "Port", "Decision", "Reason", "Status", "Bytes up", "Bytes down"],
    records.map((r) => el("tr", {},
      el("td", {}, when(r.time_ms)), el("td", {}, r.method), el("td", {}, r.host),
      el("td", {}, r.port == null ? "" : r.port),
      el("td", { class: r.decision }, r.decision), el("td", {}, r.reason || ""),
      el("td", {}, r.status == null ? "" : r.status), el("td", {}, r.bytes_up), el("td", {}, r.bytes_down))));
}

async function showJob(id) {
  const status = await api("/api/v1/jobs/" + encodeURIComponent(id));
  const parts = [
    el("h2", {}, "Job ", el("code", {}, id)),
    el("p", {}, "State: ", el("strong", { class: "state-" + status.state }, status.state)),
    el("h3", {}, "Steps"),
    table(["Time", "Step", "Node", "Details"], (status.events || []).map((e) => {
      const ev = e.event || {};
      const details = Object.entries(ev).filter(([k]) => !["event", "node"].includes(k))
        .map(([k, v]) => k + ": " + (typeof v === "object" ? JSON.stringify(v) : v)).join(", ");
      return el("tr", {}, el("td", {}, when(e.at_ms)), el("td", {}, ev.event || ""),
        el("td", {}, ev.node ? el("code", {}, String(ev.node).slice(0, 16) + "…") : ""), el("td", {}, details));
    })),
    el("h3", {}, "Executions"),
    table(["Execution", "Node", "Exit code", "Result"], (status.results || []).map((r) =>
      el("tr", {}, el("td", {}, r.execution_id), el("td", {}, el("code", {}, String(r.node).slice(0, 16) + "…")),
        el("td", {}, r.exit_code), el("td", {}, el("code", {}, r.result_cid || r.cid || ""))))),
  ];
  try {
    const logs = await api("/api/v1/jobs/" + encodeURIComponent(id) + "/logs");
    parts.push(el("h3", {}, "stdout"), el("pre", { id: "stdout" }, logs.stdout),
      el("h3", {}, "stderr"), el("pre", { id: "stderr" }, logs.stderr));
    if (logs.network_log != null) {
      parts.push(el("h3", {}, "Network (network.log)"), networkLog(logs.network_log));
    }
    const listing = await api("/api/v1/jobs/" + encodeURIComponent(id) + "/files");
    parts.push(el("h3", {}, "Result files"),
      table(["File", "Size (bytes)"], listing.files.map((f) => el("tr", {},
        el("td", {}, el("a", { href: "/api/v1/blobs/" + f.cid, download: f.path.split("/").pop() }, f.path)),
        el("td", {}, f.size)))),
      listing.truncated ? el("p", {}, "More files than shown: ") : "",
      el("p", {}, "All of them: ", el("code", {}, "skrei job get " + id), "."));
  } catch (e) {
    parts.push(el("p", {}, "No results yet: " + e.message));
  }
  parts.push(el("h3", {}, "Spec"), el("pre", {}, JSON.stringify(status.job, null, 2)));
  page.replaceChildren(...parts);
}

async function showNode() {
  const info = await api("/api/v1/node");
  const answer = el("p", { id: "allows-answer", role: "status" });
  const input = el("input", { id: "allows-host", type: "text", placeholder: "files.example.com" });
  const form = el("form", { onsubmit: async (e) => {
    e.preventDefault();
    try {
      const v = await api("/api/v1/node/allows?host=" + encodeURIComponent(input.value));
      answer.replaceChildren(el("span", { class: v.allowed ? "allow" : "deny" }, v.allowed ? "allowed" : "refused"), ": " + v.reason);
    } catch (err) { answer.replaceChildren(el("span", { class: "error" }, err.message)); }
  } }, el("label", { for: "allows-host" }, "Would an http job reaching this domain be allowed?"), input, " ",
    el("button", { type: "submit" }, "Check"));
  page.replaceChildren(
    el("h2", {}, "This node"),
    table(["", ""], [
      ["Node id", info.node_id], ["API", info.api_addr], ["Accepts network", info.accept_network],
      ["Allowlist", info.allowlist || "none"], ["Engines", (info.engines || []).join(", ")],
      ["Running", info.running + " of " + info.capacity], ["Reachability", JSON.stringify(info.reachability)],
    ].map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v)))),
    form, answer);
}

async function showPeers() {
  const info = await api("/api/v1/node");
  const peers = info.peers || [];
  const resources = (r) => r ? Object.entries(r).map(([k, v]) => k + " " + (typeof v === "object" ? JSON.stringify(v) : v)).join(", ") : "";
  page.replaceChildren(el("h2", {}, "Peers"),
    table(["Peer", "Connected", "Accepts network", "Engines", "Running", "Resources", "Labels", "Addresses"],
      peers.map((p) => {
        const i = p.info || {};
        return el("tr", { "data-peer": p.node_id },
          el("td", {}, el("code", {}, String(p.node_id).slice(0, 20) + "…")),
          el("td", {}, p.connected ? "yes" : "no"),
          el("td", {}, i.accept_network || "?"),
          el("td", {}, (i.engines || []).join(", ")),
          el("td", {}, i.capacity == null ? "" : i.running + " of " + i.capacity),
          el("td", {}, resources(i.resources)),
          el("td", {}, Object.entries(i.labels || {}).map(([k, v]) => k + "=" + v).join(", ")),
          el("td", {}, (p.connections || []).join(" ")));
      })),
    peers.length ? "" : el("p", {}, "No peers known yet."));
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// One line chart of `values` (numbers) over `times` (ms), drawn as SVG.
function chart(title, times, values) {
  const w = 560, h = 160, pad = 32;
  const max = Math.max(1, ...values);
  const t0 = times[0] || 0, t1 = times[times.length - 1] || 1;
  const x = (t) => pad + ((t - t0) / Math.max(1, t1 - t0)) * (w - 2 * pad);
  const y = (v) => h - pad + 8 - (v / max) * (h - 2 * pad);
  const box = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img", "aria-label": title });
  box.append(svg("line", { x1: pad, y1: y(0), x2: w - pad, y2: y(0), stroke: "#999" }));
  const label = svg("text", { x: 2, y: y(max) + 4, "font-size": 11 });
  label.textContent = String(max);
  box.append(label);
  if (values.length) {
    box.append(svg("polyline", { fill: "none", stroke: "#0b57d0", "stroke-width": 2,
      points: values.map((v, i) => `${x(times[i])},${y(v)}`).join(" ") }));
  }
  const last = values.length ? values[values.length - 1] : 0;
  return el("figure", {}, box, el("figcaption", {}, `${title}: ${last} now`));
}

async function showCharts() {
  const history = await api("/api/v1/metrics/history");
  const s = history.samples;
  const times = s.map((x) => x.at_ms);
  const jobs = (state) => s.map((x) => x.jobs[state] || 0);
  const span = s.length ? `${when(times[0])} to ${when(times[times.length - 1])}` : "no samples yet";
  page.replaceChildren(el("h2", {}, "Charts"),
    el("p", {}, `One sample every ${history.interval_ms / 1000} s, the last hours kept by the node: ${span}.`),
    chart("Jobs completed", times, jobs("completed")),
    chart("Jobs failed", times, jobs("failed")),
    chart("Bids received", times, s.map((x) => x.bids_received || 0)),
    chart("Egress bytes of this node's jobs", times, s.map((x) => x.egress_bytes || 0)),
    chart("Executions running", times, s.map((x) => x.running)),
    chart("Peers connected", times, s.map((x) => x.peers)));
}

function showSubmit() {
  const area = el("textarea", { id: "job-yaml", spellcheck: "false", "aria-describedby": "submit-result" },
    sessionStorage.getItem("draft") || "");
  const result = el("div", { id: "submit-result", role: "status" });
  const form = el("form", { onsubmit: async (e) => {
    e.preventDefault();
    sessionStorage.setItem("draft", area.value);
    try {
      const headers = { "content-type": "application/yaml" };
      headers[SECRET_HEADER] = SECRET;
      const answer = await api("/api/v1/jobs", { method: "POST", headers, body: area.value });
      location.hash = "#/jobs/" + answer.job_id;
    } catch (err) {
      // "path (line L, column C): message" parts, separated by "; ".
      const text = err.message.replace(/^the job is not valid: /, "");
      const items = text.split("; ").map((m) => {
        const at = /line (\d+), column (\d+)/.exec(m);
        const item = el("li", { "data-line": at ? at[1] : "", "data-column": at ? at[2] : "" },
          at ? el("strong", {}, "Line " + at[1] + ", column " + at[2] + ": ") : "", m);
        return item;
      });
      result.replaceChildren(el("p", { class: "error" }, "The job was not submitted:"),
        el("ul", { class: "errors" }, items));
      const first = items.find((i) => i.dataset.line);
      if (first) {
        const line = Number(first.dataset.line);
        const lines = area.value.split("\n");
        const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
        area.focus();
        area.setSelectionRange(start, start + (lines[line - 1] || "").length);
      }
    }
  } }, el("label", { for: "job-yaml" }, "Job file (YAML)"), area, el("p", {}, el("button", { type: "submit" }, "Submit")));
  page.replaceChildren(el("h2", {}, "Submit a job"), form, result);
}

async function render() {
  route = location.hash || "#/jobs";
  for (const a of document.querySelectorAll("nav a")) {
    if (route.startsWith(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  try {
    if (route.startsWith("#/jobs/")) await showJob(decodeURIComponent(route.slice(7)));
    else if (route === "#/node") await showNode();
    else if (route === "#/peers") await showPeers();
    else if (route === "#/charts") await showCharts();
    else if (route === "#/submit") showSubmit();
    else await showJobs();
  } catch (e) {
    page.replaceChildren(el("p", { class: "error" }, e.status === 401 ? "Your session has ended: run skrei dashboard again." : e.message));
  }
}

// Live: wait for the node's change counter and redraw the job pages.
async function follow() {
  for (;;) {
    try {
      const answer = await api("/api/v1/changes?after=" + changes + "&timeout_ms=25000");
      const changed = answer.changes !== changes;
      changes = answer.changes;
      statusLine.textContent = "live · updated " + new Date().toLocaleTimeString();
      if (changed && (route === "#/jobs" || route.startsWith("#/jobs/"))) await render();
    } catch (e) {
      statusLine.textContent = "not connected: " + e.message;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

window.addEventListener("hashchange", render);
render();
follow();

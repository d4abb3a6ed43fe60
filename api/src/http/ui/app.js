// Culvert's built-in UI: observe and operate. Lists pipelines with their status and
// throughput, shows a pipeline's sources, processors and destinations and its history (its
// events from the log, followed live), starts and stops it, and follows the records through
// any connector or processor live (the inspect routes over a WebSocket), with what each
// processor did to each record (fields added, changed, removed). It uses only the public
// HTTP API, as any other client; it authors nothing
// (pipelines are config: files, `culvert pipelines apply`, the API).
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "culvert.token";
const HEALTH_MS = 5000;
const KEEP_RECORDS = 100;

const app = document.getElementById("app");
const health = document.getElementById("health");
let view = null; // the current view: { stop() }

// ---- DOM helpers (text only: nothing from the server is ever parsed as HTML) ----

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function link(href, ...children) {
  return el("a", { href, "data-link": true }, ...children);
}

function statusName(status) {
  return String(status || "STATUS_UNSPECIFIED").replace(/^STATUS_/, "").toLowerCase();
}

function badge(status) {
  const name = statusName(status);
  return el("span", { class: "status " + name, "data-status": name }, name);
}

// ---- the API ----

// A bearer token, when the server wants one: asked for once, kept in this tab only.
function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function authorization() {
  return token() ? { authorization: `Bearer ${token()}` } : {};
}

// A WebSocket on an API route; the token, which a browser cannot send as a header there,
// rides as the subprotocol `culvert.bearer.<token>` (the server chooses `culvert`).
function openSocket(path) {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  return token() ? new WebSocket(url, ["culvert", `culvert.bearer.${token()}`]) : new WebSocket(url);
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body, extraHeaders) {
  const sent = token();
  const headers = { ...authorization(), ...(extraHeaders || {}) };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = null;
  }
  if (!response.ok) {
    const message = json && (json.message || (json.error && json.error.message));
    const error = new ApiError(response.status, message || `${response.status} ${response.statusText}`);
    // A refusal of a token since replaced (an answer still in flight when the user signed
    // in again) says nothing about the current one.
    if (response.status === 401 && sent === token()) signIn(error.message);
    throw error;
  }
  return json;
}

function explain(error) {
  return error.message || String(error);
}

// Records read and written per connector, from the Prometheus document (`/metrics`):
// `conduit_connector_bytes_count` counts each connector's records.
const throughput = {
  previous: new Map(), // component id -> { count, at }
  rates: new Map(), // component id -> records/s
  totals: new Map(), // component id -> records
  async sample() {
    let text;
    try {
      const response = await fetch("/metrics", { headers: authorization() });
      if (!response.ok) return;
      text = await response.text();
    } catch (_) {
      return;
    }
    const at = performance.now();
    const line = /^conduit_connector_bytes_count\{([^}]*)\}\s+([0-9.eE+-]+)$/;
    for (const row of text.split("\n")) {
      const match = line.exec(row);
      if (!match) continue;
      const id = /component_id="([^"]*)"/.exec(match[1]);
      if (!id) continue;
      const count = Number(match[2]);
      const before = this.previous.get(id[1]);
      if (before && at > before.at) {
        this.rates.set(id[1], Math.max(0, (count - before.count) * 1000 / (at - before.at)));
      }
      this.previous.set(id[1], { count, at });
      this.totals.set(id[1], count);
    }
  },
  describe(id) {
    return this.describeAll([id]);
  },
  // The records of these connectors together, and their rate.
  describeAll(ids) {
    const known = ids.filter((id) => this.totals.has(id));
    if (!known.length) return "";
    const total = known.reduce((sum, id) => sum + this.totals.get(id), 0).toLocaleString("en-US");
    const rated = known.filter((id) => this.rates.has(id));
    if (rated.length < known.length) return `${total} records`;
    const rate = rated.reduce((sum, id) => sum + this.rates.get(id), 0);
    return `${total} records, ${format(rate)}/s`;
  },
};

function format(rate) {
  return rate >= 100 ? Math.round(rate).toLocaleString("en-US") : rate.toFixed(1);
}

// ---- routing ----

function navigate(path) {
  if (path !== location.pathname) history.pushState(null, "", path);
  route();
}

document.addEventListener("click", (event) => {
  const anchor = event.target.closest("a[data-link]");
  if (!anchor || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(anchor.getAttribute("href"));
});
window.addEventListener("popstate", route);

function route() {
  if (view) view.stop();
  signOut.hidden = !token();
  const path = location.pathname;
  const pipeline = /^\/pipelines\/([^/]+)\/?$/.exec(path);
  if (path === "/" || path === "/pipelines" || path === "/pipelines/") view = pipelinesView();
  else if (pipeline) view = pipelineView(decodeURIComponent(pipeline[1]));
  else view = notFoundView(path);
}

function poll(every, task) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    await task();
    if (!stopped) timer = setTimeout(tick, every);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ---- signing in ----

const signOut = document.getElementById("sign-out");
signOut.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  route();
});
let signingIn = false;

// The server refused a call for want of a (valid) token: ask for one, then go on where
// the page was.
function signIn(refusal) {
  if (signingIn) return;
  signingIn = true;
  if (view) view.stop();
  view = { stop() { signingIn = false; } };
  const input = el("input", {
    type: "password", id: "token", name: "token", autocomplete: "off", placeholder: "cvt_…",
    size: 50,
  });
  const form = el("form", {
    id: "sign-in",
    onsubmit: (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      route();
    },
  }, el("label", { for: "token" }, "Token "), input, " ", el("button", { type: "submit" }, "Sign in"));
  app.replaceChildren(...[
    el("h1", {}, "Sign in"),
    el("p", {}, "This server asks for a bearer token. Make one with ",
      el("span", { class: "mono" }, "culvert tokens create NAME --tokens-file FILE"),
      "; this page keeps it in this tab only."),
    token() ? el("p", { class: "error", id: "sign-in-refused" }, `Refused: ${refusal}`) : null,
    form,
  ].filter(Boolean));
  input.focus();
}

// ---- views ----

function notFoundView(path) {
  app.replaceChildren(
    el("h1", {}, "Not found"),
    el("p", {}, "Nothing here at ", el("span", { class: "mono" }, path), ". ",
      link("/", "Back to the pipelines"), "."),
  );
  return { stop() {} };
}

async function operate(pipeline, verb) {
  const name = (pipeline.config && pipeline.config.name) || pipeline.id;
  if (verb === "stop" && !confirm(`Stop pipeline "${name}"? What is in flight is delivered first.`)) {
    return;
  }
  const path = `/v1/pipelines/${encodeURIComponent(pipeline.id)}/${verb}`;
  // Recorded as the change's actor when the server has no authentication (with it, the
  // verified identity is).
  await api("POST", path, verb === "stop" ? { force: false } : {}, { "culvert-actor": "ui" });
}

function operateButtons(pipeline, refresh, report) {
  const status = statusName(pipeline.state && pipeline.state.status);
  const running = status === "running" || status === "recovering" || status === "starting";
  const act = (verb) => async (event) => {
    event.stopPropagation();
    event.target.disabled = true;
    try {
      await operate(pipeline, verb);
      report("");
    } catch (error) {
      report(`Could not ${verb} the pipeline: ${explain(error)}`);
    }
    await refresh();
  };
  return running
    ? el("button", { class: "danger", "data-action": "stop", onclick: act("stop") }, "Stop")
    : el("button", { "data-action": "start", onclick: act("start") }, "Start");
}

function pipelinesView() {
  const problem = el("p", { class: "error", role: "alert" });
  const body = el("tbody");
  const table = el("table", { id: "pipelines" },
    el("thead", {}, el("tr", {},
      el("th", {}, "Pipeline"), el("th", {}, "Status"), el("th", {}, "Connectors"),
      el("th", {}, "Processors"), el("th", {}, "Records read"), el("th", {}, "Error"),
      el("th", {}, ""))),
    body);
  const empty = el("p", { class: "muted", hidden: true },
    "No pipelines yet. Put pipeline files in the pipelines directory, or use ",
    el("span", { class: "mono" }, "culvert pipelines apply FILE"), ".");
  app.replaceChildren(el("h1", {}, "Pipelines"), problem, table, empty);
  const report = (text) => { problem.textContent = text; };
  const refresh = async () => {
    let pipelines, connectors;
    try {
      [pipelines, connectors] = await Promise.all([
        api("GET", "/v1/pipelines"),
        api("GET", "/v1/connectors"),
        throughput.sample(),
      ]);
    } catch (error) {
      report(explain(error));
      return;
    }
    pipelines.sort((a, b) => (a.config.name || a.id).localeCompare(b.config.name || b.id));
    empty.hidden = pipelines.length > 0;
    body.replaceChildren(...pipelines.map((p) => {
      const open = () => navigate(`/pipelines/${encodeURIComponent(p.id)}`);
      const ids = p.connectorIds || [];
      const sources = connectors.filter((c) => c.type === "TYPE_SOURCE" && ids.includes(c.id));
      return el("tr", {
        class: "pick", tabindex: 0, "data-id": p.id, onclick: open,
        onkeydown: (e) => { if (e.key === "Enter") open(); },
      },
        el("td", {}, link(`/pipelines/${encodeURIComponent(p.id)}`, p.config.name || p.id),
          el("div", { class: "muted mono" }, p.id)),
        el("td", {}, badge(p.state && p.state.status)),
        el("td", {}, String(ids.length)),
        el("td", {}, String((p.processorIds || []).length)),
        el("td", { class: "muted" }, throughput.describeAll(sources.map((c) => c.id))),
        el("td", { class: "error" }, (p.state && p.state.error) || ""),
        el("td", {}, operateButtons(p, refresh, report)));
    }));
  };
  const stop = poll(POLL_MS, refresh);
  return { stop };
}

function pipelineView(id) {
  const problem = el("p", { class: "error", role: "alert" });
  const heading = el("div");
  const flow = el("div", { class: "flow", id: "flow" });
  const inspector = el("section", { id: "inspector" });
  const timeline = historyPanel(id);
  app.replaceChildren(
    el("p", {}, link("/", "← Pipelines")), heading, problem,
    el("h2", {}, "Flow"), flow, inspector, timeline.section);
  const report = (text) => { problem.textContent = text; };
  let session = null;
  // `?inspect=ID` (a connector) or `?inspect=ID:in` / `ID:out` (a processor) is the live
  // view's link: opened on load, kept in the address bar while it is open.
  let wanted = new URLSearchParams(location.search).get("inspect");
  // Open a live panel (`make(onClose)` builds it in `inspector`) under the link `key`.
  const open = (key, make) => {
    if (session) session.close();
    session = make(() => {
      session = null;
      history.replaceState(null, "", location.pathname);
    });
    history.replaceState(null, "", `${location.pathname}?inspect=${encodeURIComponent(key)}`);
  };
  const inspect = (what, path, key) =>
    open(key, (onClose) => inspectPanel(inspector, what, path, onClose));

  const card = (title, plugin, entityId, extra, actions) =>
    el("div", { class: "card", "data-id": entityId },
      el("div", { class: "name" }, title),
      el("div", { class: "muted" }, plugin),
      el("div", { class: "muted mono" }, entityId),
      extra,
      el("div", { class: "actions" }, actions));

  const processorCard = (processor) => {
    const base = `/v1/processors/${encodeURIComponent(processor.id)}`;
    const label = processor.plugin;
    const side = (which) => () =>
      inspect(`${label}: records ${which}`, `${base}/inspect-${which}`, `${processor.id}:${which}`);
    const diff = () =>
      open(`${processor.id}:diff`, (onClose) => diffPanel(inspector, label, base, onClose));
    return card(label, processor.condition ? `if ${processor.condition}` : "", processor.id, null, [
      el("button", { onclick: side("in"), "data-inspect": `${processor.id}:in` }, "Records in"),
      el("button", { onclick: side("out"), "data-inspect": `${processor.id}:out` }, "Records out"),
      el("button", { onclick: diff, "data-inspect": `${processor.id}:diff` }, "Before/after"),
    ]);
  };

  const connectorCard = (connector) => {
    const name = (connector.config && connector.config.name) || connector.id;
    const path = `/v1/connectors/${encodeURIComponent(connector.id)}/inspect`;
    return card(name, connector.plugin, connector.id,
      el("div", { class: "muted", "data-throughput": connector.id }, throughput.describe(connector.id)),
      [el("button", { onclick: () => inspect(name, path, connector.id), "data-inspect": connector.id },
        "Inspect records")]);
  };

  // A connector with its own processors: a source's after it, a destination's before it.
  const withProcessors = (connector, processors) => {
    const own = processors.filter((p) => (connector.processorIds || []).includes(p.id));
    return connector.type === "TYPE_SOURCE"
      ? [connectorCard(connector), ...own.map(processorCard)]
      : [...own.map(processorCard), connectorCard(connector)];
  };

  const refresh = async () => {
    let pipeline, connectors, processors;
    try {
      [pipeline, connectors, processors] = await Promise.all([
        api("GET", `/v1/pipelines/${encodeURIComponent(id)}`),
        api("GET", `/v1/connectors?pipeline_id=${encodeURIComponent(id)}`),
        api("GET", "/v1/processors"),
        throughput.sample(),
      ]);
    } catch (error) {
      report(explain(error));
      return;
    }
    const name = pipeline.config.name || pipeline.id;
    document.title = `${name} · Culvert`;
    heading.replaceChildren(...[
      el("h1", {}, name, " ", badge(pipeline.state && pipeline.state.status)),
      pipeline.config.description ? el("p", {}, pipeline.config.description) : null,
      el("p", { class: "muted mono" }, pipeline.id),
      pipeline.state && pipeline.state.error
        ? el("p", { class: "error", id: "pipeline-error" }, pipeline.state.error) : null,
      el("div", { class: "bar" }, operateButtons(pipeline, refresh, report)),
    ].filter(Boolean));
    const mine = processors.filter((p) => p.parent && p.parent.id === id);
    const sources = connectors.filter((c) => c.type === "TYPE_SOURCE");
    const destinations = connectors.filter((c) => c.type === "TYPE_DESTINATION");
    const stage = (title, cards) =>
      el("div", { class: "stage" }, el("h3", {}, title),
        cards.length ? cards : el("p", { class: "muted" }, "none"));
    flow.replaceChildren(
      stage("Sources", sources.flatMap((c) => withProcessors(c, processors))),
      el("div", { class: "arrow", "aria-hidden": "true" }, "→"),
      stage("Processors", mine.map(processorCard)),
      el("div", { class: "arrow", "aria-hidden": "true" }, "→"),
      stage("Destinations", destinations.flatMap((c) => withProcessors(c, processors))));
    if (wanted) {
      const button = flow.querySelector(`button[data-inspect="${CSS.escape(wanted)}"]`);
      wanted = null;
      if (button) button.click();
    }
  };
  const stop = poll(POLL_MS, refresh);
  return {
    stop() {
      stop();
      if (session) session.close();
      timeline.close();
      document.title = "Culvert";
    },
  };
}

// ---- the live views ----

// Follow a streaming route over a WebSocket: each `{"result": ...}` line goes to `onResult`;
// the stream's state (live, how it ended, closed) is shown in `state`. Returns the socket.
function follow(path, state, onResult) {
  const socket = openSocket(path);
  socket.onopen = () => { state.textContent = "live"; };
  socket.onmessage = (message) => {
    let line;
    try {
      line = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    if (line.result) {
      onResult(line.result);
      return;
    }
    const error = line.error || line;
    state.textContent = `ended: ${error.message || JSON.stringify(error)}`;
  };
  socket.onclose = () => {
    if (state.textContent === "live" || state.textContent === "connecting…") {
      state.textContent = "closed";
    }
  };
  return socket;
}

// ---- the live inspector ----

function decodeData(data) {
  if (!data) return "";
  if (data.structuredData !== undefined) return JSON.stringify(data.structuredData);
  if (data.rawData !== undefined) {
    try {
      const bytes = Uint8Array.from(atob(data.rawData), (c) => c.charCodeAt(0));
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch (_) {
      return `(${data.rawData.length} base64 characters)`;
    }
  }
  return "";
}

function shorten(text, most) {
  return text.length > most ? text.slice(0, most - 1) + "…" : text;
}

// A Pause/Resume button for a live table: while paused, what arrives is kept but not
// shown; `render` runs again on resume.
function pauseButton(render) {
  let paused = false;
  const button = el("button", {
    onclick: () => {
      paused = !paused;
      button.textContent = paused ? "Resume" : "Pause";
      if (!paused) render();
    },
  }, "Pause");
  return { button, paused: () => paused };
}

function inspectPanel(section, what, path, onClose) {
  const records = [];
  let received = 0;
  const state = el("span", { class: "muted", id: "inspector-state" }, "connecting…");
  const counter = el("span", { class: "muted" });
  const rows = el("tbody");
  const detail = el("pre", { class: "mono", hidden: true, id: "inspector-record" });
  const pause = pauseButton(() => render());
  const render = () => {
    counter.textContent = `${received.toLocaleString("en-US")} received, last ${records.length} shown`;
    if (pause.paused()) return;
    rows.replaceChildren(...records.map((record, index) => {
      const after = record.payload && record.payload.after;
      const before = record.payload && record.payload.before;
      const show = () => {
        detail.hidden = false;
        detail.textContent = JSON.stringify(record, null, 2);
      };
      return el("tr", { class: "pick", tabindex: 0, onclick: show,
        onkeydown: (e) => { if (e.key === "Enter") show(); } },
        el("td", { class: "muted" }, String(received - index)),
        el("td", {}, String(record.operation || "").replace(/^OPERATION_/, "").toLowerCase()),
        el("td", { class: "mono" }, shorten(decodeData(record.key), 40)),
        el("td", { class: "mono" }, shorten(decodeData(after) || decodeData(before), 160)));
    }));
  };
  const socket = follow(path, state, (record) => {
    received += 1;
    records.unshift(record);
    if (records.length > KEEP_RECORDS) records.length = KEEP_RECORDS;
    render();
  });
  section.replaceChildren(
    el("h2", {}, "Records: ", what),
    el("div", { class: "bar" }, state, counter, pause.button,
      el("button", { onclick: () => { records.length = 0; detail.hidden = true; render(); } }, "Clear"),
      el("button", { onclick: () => { socket.close(); section.replaceChildren(); onClose(); } }, "Close")),
    el("p", { class: "muted" },
      "Records as they pass, without slowing the pipeline: when this page falls behind, it " +
      "misses records rather than holding them up. Select a record to see all of it."),
    el("table", { id: "records" },
      el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "Operation"),
        el("th", {}, "Key"), el("th", {}, "Payload"))),
      rows),
    detail);
  render();
  return { close() { socket.close(); } };
}

// ---- a processor's before/after diff ----

const KEEP_PAIRS = 50;
const KEEP_UNPAIRED = 1000;

// One step of a field's path, as processors name fields: `.name`, or `["odd.name"]`.
function segment(name) {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

// A record as leaves: path (`.Payload.After.id`, `.Metadata.seen`) -> value as JSON text.
// Structured data is walked field by field; raw data is one value (its text).
function leaves(record) {
  const out = new Map();
  const walk = (path, value) => {
    if (value !== null && typeof value === "object" && !Array.isArray(value)
        && Object.keys(value).length) {
      for (const [name, inner] of Object.entries(value)) walk(path + segment(name), inner);
    } else {
      out.set(path, JSON.stringify(value));
    }
  };
  const data = (path, d) => {
    if (!d) return;
    if (d.structuredData !== undefined) walk(path, d.structuredData);
    else if (d.rawData !== undefined) out.set(path, JSON.stringify(decodeData(d)));
  };
  out.set(".Operation",
    JSON.stringify(String(record.operation || "").replace(/^OPERATION_/, "").toLowerCase()));
  for (const [name, value] of Object.entries(record.metadata || {})) {
    out.set(".Metadata" + segment(name), JSON.stringify(value));
  }
  data(".Key", record.key);
  data(".Payload.Before", record.payload && record.payload.before);
  data(".Payload.After", record.payload && record.payload.after);
  return out;
}

// What a processor did to one record: the fields it added, removed and changed, by path.
function changes(before, after) {
  const was = leaves(before);
  const now = leaves(after);
  const found = [];
  for (const [path, value] of was) {
    if (!now.has(path)) found.push({ kind: "removed", path, before: value });
    else if (now.get(path) !== value) {
      found.push({ kind: "changed", path, before: value, after: now.get(path) });
    }
  }
  for (const [path, value] of now) {
    if (!was.has(path)) found.push({ kind: "added", path, after: value });
  }
  // The record's own fields first, its metadata (schema versions and the like) after.
  const rank = (c) => (c.path.startsWith(".Metadata") ? 1 : 0);
  return found.sort((a, b) =>
    rank(a) - rank(b) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

const GLYPH = { added: "+", removed: "−", changed: "~" };

// Follow a processor's records in and out at once and pair them by position: for each
// record, the fields the processor added, removed and changed (for each record it made of
// it, when it made several: `split` gives them all the original's position). A record that
// went in and was not seen coming out (the processor filtered it, or this view missed it:
// inspection never slows the pipeline) is shown as such once a later record has come out.
function diffPanel(section, what, base, onClose) {
  const waiting = new Map(); // position -> record in, not yet seen out (arrival order)
  const early = new Map(); // position -> records out before this view saw it go in
  const pairs = []; // newest first: { before, outs (none: not seen out), found per out }
  let last = null; // the newest pair with records out, and its position
  let paired = 0;
  const stateIn = el("span", { class: "muted", id: "diff-in-state" }, "connecting…");
  const stateOut = el("span", { class: "muted", id: "diff-out-state" }, "connecting…");
  const counter = el("span", { class: "muted" });
  const rows = el("tbody");
  const detail = el("ul", { class: "diff mono", hidden: true, id: "diff-detail" });
  const pause = pauseButton(() => render());
  const bounded = (map, most) => {
    while (map.size > most) map.delete(map.keys().next().value);
  };
  const lines = (found) => found.length
    ? found.map((c) =>
      el("li", { class: c.kind, "data-kind": c.kind, "data-path": c.path },
        el("span", { class: "glyph", "aria-label": c.kind }, GLYPH[c.kind]), " ",
        el("span", { class: "path" }, c.path), " ",
        c.kind === "changed" ? `${shorten(c.before, 200)} → ${shorten(c.after, 200)}`
          : shorten(c.kind === "added" ? c.after : c.before, 400)))
    : [el("li", { class: "muted" }, "unchanged")];
  const show = (pair) => {
    detail.hidden = false;
    if (!pair.outs.length) {
      detail.replaceChildren(el("li", { class: "muted" },
        "not seen coming out: the processor filtered it, or this view missed it"));
      return;
    }
    if (pair.outs.length === 1) {
      detail.replaceChildren(...lines(pair.found[0]));
      return;
    }
    detail.replaceChildren(...pair.found.flatMap((found, index) => [
      el("li", { class: "heading", "data-out": index + 1 },
        `record ${index + 1} of ${pair.outs.length} out`),
      ...lines(found),
    ]));
  };
  const describe = (found) => {
    if (!found.length) return "unchanged";
    const count = (kind) => found.filter((c) => c.kind === kind).length;
    return ["added", "changed", "removed"].filter((k) => count(k))
      .map((k) => `${count(k)} ${k}`).join(", ") + ": " +
      shorten(found.map((c) => c.path).join(" "), 120);
  };
  const summary = (pair) => {
    if (!pair.outs.length) return "not seen coming out";
    if (pair.outs.length === 1) return describe(pair.found[0]);
    return `${pair.outs.length} records out; the first: ${describe(pair.found[0])}`;
  };
  const render = () => {
    counter.textContent = `${paired.toLocaleString("en-US")} paired, last ${pairs.length} shown`;
    if (pause.paused()) return;
    rows.replaceChildren(...pairs.map((pair) =>
      el("tr", { class: "pick", tabindex: 0, onclick: () => show(pair),
        onkeydown: (e) => { if (e.key === "Enter") show(pair); } },
        el("td", { class: "mono" }, shorten(decodeData(pair.before.key), 40)),
        el("td", { class: pair.outs.length ? "" : "muted" }, summary(pair)))));
  };
  const add = (position, before, outs) => {
    paired += 1;
    const pair = { before, outs, found: outs.map((out) => changes(before, out)) };
    pairs.unshift(pair);
    if (pairs.length > KEEP_PAIRS) pairs.length = KEEP_PAIRS;
    if (outs.length) last = { position, pair };
  };
  // Records leave a processor in the order they entered it: the records waiting from
  // before this one will not be seen coming out.
  const pair = (position, outs) => {
    for (const [earlier, record] of waiting) {
      waiting.delete(earlier);
      if (earlier === position) {
        add(position, record, outs);
        break;
      }
      add(earlier, record, []);
    }
    render();
  };
  const sockets = [
    follow(`${base}/inspect-in`, stateIn, (record) => {
      waiting.set(record.position, record);
      if (early.has(record.position)) {
        const outs = early.get(record.position);
        early.delete(record.position);
        pair(record.position, outs);
        return;
      }
      bounded(waiting, KEEP_UNPAIRED);
    }),
    follow(`${base}/inspect-out`, stateOut, (record) => {
      if (waiting.has(record.position)) {
        pair(record.position, [record]);
      } else if (last && last.position === record.position) {
        // Another record made of the one just paired.
        last.pair.outs.push(record);
        last.pair.found.push(changes(last.pair.before, record));
        render();
      } else {
        const outs = early.get(record.position) || [];
        outs.push(record);
        early.set(record.position, outs);
        bounded(early, KEEP_UNPAIRED);
      }
    }),
  ];
  const close = () => sockets.forEach((socket) => socket.close());
  section.replaceChildren(
    el("h2", {}, "Before and after: ", what),
    el("div", { class: "bar" }, "in ", stateIn, " out ", stateOut, counter, pause.button,
      el("button", { onclick: () => { pairs.length = 0; detail.hidden = true; render(); } }, "Clear"),
      el("button", { onclick: () => { close(); section.replaceChildren(); onClose(); } }, "Close")),
    el("p", { class: "muted" },
      "Each record as it went into the processor and came out, paired by position: the " +
      "fields it added (+), changed (~) and removed (−). Select a record to see them."),
    el("table", { id: "diffs" },
      el("thead", {}, el("tr", {}, el("th", {}, "Key"), el("th", {}, "What the processor did"))),
      rows),
    detail);
  render();
  return { close };
}

// ---- the pipeline's history (the event log) ----

const HISTORY_ROWS = 20;

// What changed the pipeline, who and when: its events from the log, followed live (the
// events watch over a WebSocket, from the first).
function historyPanel(id) {
  const events = [];
  const rows = el("tbody");
  const state = el("span", { class: "muted", id: "history-state" }, "connecting…");
  const section = el("section", { id: "history" },
    el("h2", {}, "History"),
    el("p", { class: "muted" }, "Every change to this pipeline, newest first, as the event " +
      "log recorded it. ", state),
    el("table", { id: "events" },
      el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "When"),
        el("th", {}, "What"), el("th", {}, "Who"), el("th", {}, "Why"))),
      rows));
  const render = () => {
    rows.replaceChildren(...events.map((event) =>
      el("tr", { "data-type": event.type },
        el("td", { class: "muted" }, String(event.seq)),
        el("td", { class: "mono" }, String(event.recordedAt || "").replace("T", " ").replace(/\.\d+Z$/, "Z")),
        el("td", {}, event.type),
        el("td", {}, event.actor || ""),
        el("td", { class: "muted" }, event.reason || ""))));
  };
  let pending = false;
  const path = `/v1/events/watch?entity_id=${encodeURIComponent(id)}&from_seq=1`;
  const socket = follow(path, state, (event) => {
    events.unshift(event);
    if (events.length > HISTORY_ROWS) events.length = HISTORY_ROWS;
    // The whole history arrives at once on opening: draw once per frame.
    if (!pending) {
      pending = true;
      requestAnimationFrame(() => { pending = false; render(); });
    }
  });
  return { section, close() { socket.close(); } };
}

// ---- health ----

poll(HEALTH_MS, async () => {
  try {
    const response = await fetch("/readyz");
    const body = await response.json();
    const ready = response.ok;
    const text = ready ? "ready" : "not ready";
    const pipelines = body.pipelines;
    health.replaceChildren(
      el("span", { class: "status " + (ready ? "ready" : "not-ready") }, text),
      pipelines ? ` ${pipelines.running} of ${pipelines.total} pipelines running` : "");
  } catch (_) {
    health.replaceChildren(el("span", { class: "status not-ready" }, "unreachable"));
  }
});

route();

// The ops dashboard: sign in with the admin token, then the backends, the queues, the
// last hour's throughput and every owner's jobs. One admin event stream keeps the job
// rows live; the overview is polled every few seconds while the tab is visible.
// Every call goes to /v1/admin/…, where the session cookie counts.

import { api, pageData } from "./api.js";
import { h, show } from "./dom.js";

const POLL_MS = 4000;
const PAGE_SIZE = 25;
const TERMINAL = new Set(["succeeded", "failed", "canceled", "expired"]);
const LABELS = {
  queued: "Queued",
  running: "Running",
  canceling: "Stopping",
  succeeded: "Succeeded",
  failed: "Failed",
  canceled: "Canceled",
  expired: "Expired",
};
const BACKEND_LABELS = {
  idle: "Idle",
  busy: "Busy",
  unreachable: "Unreachable",
  draining: "Draining",
  warming: "Warming",
  down: "Down",
};
const CONNECTION = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline, retrying…" };
const SVG_NS = "http://www.w3.org/2000/svg";
const JOB_HASH = /^#job=([0-9a-f-]{36})$/i;

const $ = (id) => document.getElementById(id);
const titles = pageData().titles || {};

// ---------------------------------------------------------------- formatting

// The id's last group: the random part of a UUIDv7, and a whole word of its full name.
function shortId(id) {
  return id.slice(id.lastIndexOf("-") + 1);
}

function time(iso, { seconds = true } = {}) {
  if (!iso) return "–";
  const at = new Date(iso);
  const clock = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}) });
  if (new Date().toDateString() === at.toDateString()) return clock;
  return `${at.toLocaleDateString([], { month: "short", day: "numeric" })} ${clock}`;
}

function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

function between(start, end) {
  if (!start || !end) return null;
  return new Date(end) - new Date(start);
}

function bytes(n) {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GB`;
  if (n >= 2 ** 20) return `${Math.round(n / 2 ** 20)} MB`;
  return `${Math.round(n / 1024)} KB`;
}

function ago(iso) {
  const s = Math.max(0, Math.round((Date.now() - new Date(iso)) / 1000));
  return s < 2 ? "just now" : s < 90 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, text: LABELS[status] || status });
}

// Shows the id's last group; its name holds the whole id, which contains what it
// shows, so speech and sight agree.
function jobLink(id) {
  return h("a", { href: `#job=${id}`, class: "job-link mono", "aria-label": `Job ${id}`, title: id, text: shortId(id) });
}

function announce(text) {
  $("announce").textContent = text;
}

// ---------------------------------------------------------------- session

const signinSection = $("signin");
const dashboard = $("dashboard");
const tokenInput = $("admin-token");
const tokenError = $("token-error");
let running = false;

function setTokenError(message) {
  tokenError.textContent = message || "";
  show(tokenError, Boolean(message));
  $("token-field").classList.toggle("has-error", Boolean(message));
  if (message) {
    tokenInput.setAttribute("aria-invalid", "true");
    tokenInput.setAttribute("aria-describedby", "token-error token-hint");
  } else {
    tokenInput.removeAttribute("aria-invalid");
    tokenInput.setAttribute("aria-describedby", "token-hint");
  }
}

function showSignIn(message) {
  stop();
  if (dialog.open) dialog.close();
  show(dashboard, false);
  show(signinSection, true);
  setTokenError(message);
  tokenInput.focus();
}

// Every admin call: a 401 means the session ended (expired, signed out in another tab,
// token rotated), so the page goes back to the sign-in form.
async function call(path, options) {
  try {
    return await api(path, options);
  } catch (error) {
    if (error.status === 401 && running) showSignIn("Your session has ended. Sign in again.");
    throw error;
  }
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (!token) {
    setTokenError("Enter the admin token.");
    tokenInput.focus();
    return;
  }
  const button = $("signin-button");
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    await api("/v1/admin/session", { method: "POST", json: { token } });
    tokenInput.value = "";
    setTokenError("");
    show(signinSection, false);
    show(dashboard, true);
    start();
    $("ops-title").focus();
  } catch (error) {
    setTokenError(error.status === 401 ? "That is not the admin token. Check it and try again." : error.message);
    tokenInput.focus();
    tokenInput.select();
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
});

$("signout").addEventListener("click", async () => {
  try {
    await api("/v1/admin/session", { method: "DELETE" });
  } catch {
    // Signed out locally all the same; the cookie expires on its own.
  }
  showSignIn("");
  announce("Signed out.");
});

// ---------------------------------------------------------------- overview: backends, queues, throughput

const backendList = $("backends");
const backendCards = new Map();
let pollTimer = null;
let overviewBusy = false;

function meter(label) {
  const fill = h("span", { class: "bar-fill" });
  const figure = h("span", { class: "meter-figure" });
  const el = h("div", { class: "meter" }, h("div", { class: "meter-row" }, h("span", { class: "meter-label", text: label }), figure), h("div", { class: "bar", "aria-hidden": "true" }, fill));
  return { el, fill, figure };
}

function setMeter(m, used, total) {
  if (!total) {
    m.figure.textContent = "–";
    m.fill.style.width = "0%";
    m.el.classList.remove("is-high");
    return;
  }
  const share = Math.max(0, Math.min(1, used / total));
  m.figure.textContent = `${bytes(used)} of ${bytes(total)} (${Math.round(share * 100)}%)`;
  // Set through the CSSOM: the page's CSP allows no inline style attributes.
  m.fill.style.width = `${(share * 100).toFixed(1)}%`;
  m.el.classList.toggle("is-high", share >= 0.9);
}

function backendCard(b) {
  const titleId = `backend-${b.id}-title`;
  const parts = {
    badge: h("span", { class: "badge" }),
    where: h("p", { class: "backend-where" }),
    jobs: h("dd", { class: "backend-jobs" }),
    queue: h("dd"),
    slots: h("dd"),
    models: h("dd"),
    vram: meter("VRAM"),
    ram: meter("RAM"),
    error: h("p", { class: "backend-error", hidden: true }),
    foot: h("p", { class: "backend-foot" }),
    drainNote: h("p", { class: "backend-note", hidden: true, text: "Drained: it finishes what it runs and takes no new job until resumed." }),
    toggle: h("button", { type: "button", class: "button secondary small" }),
    jobsKey: null,
    draining: null,
  };
  parts.toggle.addEventListener("click", () => drainOrResume(b.id, parts));
  const el = h(
    "li",
    { class: "backend", "data-backend-id": b.id, "aria-labelledby": titleId },
    h("div", { class: "backend-head" }, h("h3", { id: titleId, class: "mono", text: b.id }), parts.badge),
    parts.where,
    h(
      "dl",
      { class: "backend-facts" },
      h("div", {}, h("dt", { text: "Running" }), parts.jobs),
      h("div", {}, h("dt", { text: "ComfyUI queue" }), parts.queue),
      h("div", {}, h("dt", { text: "Free slots" }), parts.slots),
      h("div", {}, h("dt", { text: "Model files" }), parts.models),
    ),
    parts.vram.el,
    parts.ram.el,
    parts.error,
    parts.drainNote,
    h("div", { class: "backend-bottom" }, parts.foot, parts.toggle),
  );
  return { el, parts };
}

async function drainOrResume(id, parts) {
  const action = parts.draining ? "resume" : "drain";
  parts.toggle.disabled = true;
  try {
    const backend = await call(`/v1/admin/backends/${encodeURIComponent(id)}/${action}`, { method: "POST" });
    renderBackends([...backendCards.keys()].map((k) => (k === id ? backend : backendCards.get(k).last)));
    announce(action === "drain" ? `${id} is drained: it takes no new job.` : `${id} takes jobs again.`);
  } catch (error) {
    if (error.status !== 401) {
      parts.error.textContent = error.message;
      show(parts.error, true);
    }
  } finally {
    parts.toggle.disabled = false;
  }
}

function renderBackends(list) {
  show($("backends-empty"), list.length === 0);
  const seen = new Set();
  for (const b of list) {
    seen.add(b.id);
    let card = backendCards.get(b.id);
    if (!card) {
      card = backendCard(b);
      backendCards.set(b.id, card);
      backendList.append(card.el);
    }
    // Updated in place, so keyboard focus on a job link or a button survives every poll.
    card.last = b;
    const { parts, el } = card;
    el.dataset.state = b.state;
    parts.badge.className = `badge backend-${b.state}`;
    parts.badge.textContent = BACKEND_LABELS[b.state] || b.state;
    parts.where.textContent = `pool ${b.pool} · ${b.url}`;
    const key = b.current_jobs.join(",");
    if (key !== parts.jobsKey) {
      parts.jobsKey = key;
      parts.jobs.replaceChildren(...(b.current_jobs.length ? b.current_jobs.map((id) => jobLink(id)) : [h("span", { class: "muted", text: "no job" })]));
    }
    parts.queue.textContent = b.queue ? `${b.queue.running} running, ${b.queue.pending} waiting` : "–";
    setLessee(parts, b.lessee);
    const s = b.system;
    setMeter(parts.vram, s ? s.vram_total - s.vram_free : 0, s ? s.vram_total : 0);
    setMeter(parts.ram, s ? s.ram_total - s.ram_free : 0, s ? s.ram_total : 0);
    parts.error.textContent = b.error || "";
    show(parts.error, Boolean(b.error));
    parts.foot.textContent = `${s ? `ComfyUI ${s.comfyui_version} · ` : ""}asked ${ago(b.checked_at)}`;
    // Drain and resume arrived with the API's `draining`; without it there is no button.
    const canDrain = typeof b.draining === "boolean";
    show(parts.toggle, canDrain);
    if (canDrain && parts.draining !== b.draining) {
      parts.draining = b.draining;
      parts.toggle.textContent = b.draining ? "Resume" : "Drain";
      parts.toggle.setAttribute("aria-label", `${b.draining ? "Resume" : "Drain"} ${b.id}`);
      parts.toggle.className = `button small ${b.draining ? "primary" : "secondary"}`;
    }
    show(parts.drainNote, Boolean(b.draining));
  }
  for (const [id, card] of backendCards) {
    if (!seen.has(id)) {
      card.el.remove();
      backendCards.delete(id);
    }
  }
}

// What an agent told the gateway when it last asked for work: its free slots and the
// model files its ComfyUI lists (a job naming others is not leased to it).
function setLessee(parts, lessee) {
  parts.slots.textContent = lessee && lessee.capacity != null ? String(lessee.capacity) : "–";
  const models = lessee ? lessee.models : null;
  const key = models ? models.join("\n") : "";
  if (key === parts.modelsKey) return;
  parts.modelsKey = key;
  if (!models) {
    parts.models.replaceChildren(h("span", { class: "muted", text: "not reported" }));
  } else if (models.length === 0) {
    parts.models.replaceChildren(h("span", { text: "none" }));
  } else {
    // Focusable: a long list scrolls, and a keyboard must reach it.
    const list = h("ul", { class: "model-list mono", tabindex: "0", "aria-label": "Model files" }, ...models.map((m) => h("li", { text: m })));
    parts.models.replaceChildren(h("details", {}, h("summary", { text: `${models.length} ${models.length === 1 ? "file" : "files"}` }), list));
  }
}

const remoteList = $("remote");
const remoteCards = new Map();

function remoteCard(r) {
  const titleId = `remote-${remoteCards.size}-title`;
  const parts = { where: h("p", { class: "backend-where" }), slots: h("dd"), models: h("dd"), modelsKey: null };
  const el = h(
    "li",
    { class: "backend", "data-url": r.url, "aria-labelledby": titleId },
    h("div", { class: "backend-head" }, h("h3", { id: titleId, class: "mono", text: r.url })),
    parts.where,
    h(
      "dl",
      { class: "backend-facts" },
      h("div", {}, h("dt", { text: "Free slots" }), parts.slots),
      h("div", {}, h("dt", { text: "Model files" }), parts.models),
    ),
  );
  return { el, parts };
}

function renderRemote(list) {
  show($("remote-part"), list.length > 0);
  const seen = new Set();
  for (const r of list) {
    const key = `${r.agent_id} ${r.url}`;
    seen.add(key);
    let card = remoteCards.get(key);
    if (!card) {
      card = remoteCard(r);
      remoteCards.set(key, card);
      remoteList.append(card.el);
    }
    card.parts.where.textContent = `${r.pools.length === 1 ? "pool" : "pools"} ${r.pools.join(", ")} · agent ${r.agent_id}`;
    setLessee(card.parts, r);
  }
  for (const [key, card] of remoteCards) {
    if (!seen.has(key)) {
      card.el.remove();
      remoteCards.delete(key);
    }
  }
}

function renderStats(stats) {
  for (const dd of document.querySelectorAll("[data-total]")) {
    dd.textContent = String(stats.totals[dd.dataset.total] ?? "–");
  }
  $("totals").querySelector('[data-total="failed_last_hour"]').classList.toggle("is-bad", stats.totals.failed_last_hour > 0);
  $("pools").tBodies[0].replaceChildren(
    ...stats.pools.map((p) =>
      h(
        "tr",
        {},
        h("th", { scope: "row", text: p.pool }),
        h("td", { class: "num", text: String(p.queued) }),
        h("td", { class: "num", text: String(p.running) }),
        h("td", { class: `num${p.backends_connected < p.backends || p.backends === 0 ? " is-bad" : ""}`, text: `${p.backends_connected} of ${p.backends}` }),
      ),
    ),
  );
  renderChart(stats.throughput);
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

const SERIES = [
  ["succeeded", "succeeded"],
  ["failed", "failed"],
  ["canceled", "canceled"],
  ["expired", "expired"],
];

function renderChart(tp) {
  const root = $("throughput");
  const buckets = tp.buckets;
  const top = Math.max(1, ...buckets.map((b) => b.total));
  const slot = 10;
  const height = 100;
  const bars = buckets.map((b, i) => {
    const g = svg("g", {}, svg("title", {}, `${time(b.start, { seconds: false })}: ${b.total} finished${b.total ? ` (${SERIES.filter(([k]) => b[k]).map(([k, l]) => `${b[k]} ${l}`).join(", ")})` : ""}`));
    let y = height;
    for (const [key] of SERIES) {
      if (!b[key]) continue;
      const hgt = (b[key] / top) * (height - 4);
      y -= hgt;
      g.append(svg("rect", { x: i * slot + 1.5, y: y.toFixed(2), width: slot - 3, height: hgt.toFixed(2), class: `bar-${key}` }));
    }
    // An empty minute still shows where it is.
    if (!b.total) g.append(svg("rect", { x: i * slot + 1.5, y: height - 1, width: slot - 3, height: 1, class: "bar-empty" }));
    return g;
  });
  const chart = svg(
    "svg",
    {
      viewBox: `0 0 ${buckets.length * slot} ${height}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-labelledby": "throughput-title",
      "aria-describedby": "throughput-summary",
      class: "chart-svg",
    },
    svg("line", { x1: 0, x2: buckets.length * slot, y1: 4, y2: 4, class: "chart-grid", "vector-effect": "non-scaling-stroke" }),
    svg("line", { x1: 0, x2: buckets.length * slot, y1: height, y2: height, class: "chart-base", "vector-effect": "non-scaling-stroke" }),
    ...bars,
  );
  root.querySelector("[data-chart-svg]").replaceChildren(chart);
  root.querySelector("[data-chart-max]").textContent = `${top} / min`;

  const sum = (k) => buckets.reduce((n, b) => n + b[k], 0);
  const total = sum("total");
  const summary = root.querySelector("[data-chart-summary]");
  if (!total) {
    summary.replaceChildren("No job finished in the last hour.");
    return;
  }
  const busiest = buckets.reduce((a, b) => (b.total > a.total ? b : a));
  const recent = buckets.slice(-5).reduce((n, b) => n + b.total, 0);
  const legend = h(
    "ul",
    { class: "legend" },
    ...SERIES.filter(([k]) => sum(k) > 0).map(([k, label]) => h("li", {}, h("span", { class: `swatch bar-${k}`, "aria-hidden": "true" }), `${sum(k)} ${label}`)),
  );
  summary.replaceChildren(
    h("span", { text: `${total} ${total === 1 ? "job" : "jobs"} finished in the last hour; ${recent} in the last 5 minutes. Busiest minute: ${time(busiest.start, { seconds: false })}, with ${busiest.total}.` }),
    legend,
  );
}

async function refreshOverview() {
  if (overviewBusy || !running) return;
  overviewBusy = true;
  try {
    const [backends, stats] = await Promise.all([call("/v1/admin/backends"), call("/v1/admin/stats")]);
    if (!running) return;
    renderBackends(backends.backends);
    renderRemote(backends.remote || []);
    renderStats(stats);
    $("updated").textContent = `· updated ${time(stats.at)}`;
  } catch (error) {
    if (error.status !== 401) $("updated").textContent = `· ${error.message}`;
  } finally {
    overviewBusy = false;
  }
}

function schedulePoll() {
  clearTimeout(pollTimer);
  if (!running || document.hidden) return;
  pollTimer = setTimeout(() => refreshOverview().finally(schedulePoll), POLL_MS);
}

document.addEventListener("visibilitychange", () => {
  if (!running) return;
  if (document.hidden) {
    clearTimeout(pollTimer);
  } else {
    refreshOverview().finally(schedulePoll);
    jobs.refreshFirst();
  }
});

// ---------------------------------------------------------------- jobs table

const tbody = $("jobs").tBodies[0];
const filterForm = $("filters");
const moreButton = $("jobs-more");

const jobs = {
  rows: new Map(),
  cursor: null,
  filters: {},
  generation: 0,

  query(cursor) {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    for (const [k, v] of Object.entries(this.filters)) if (v) q.set(k, v);
    if (cursor) q.set("cursor", cursor);
    return `/v1/admin/jobs?${q}`;
  },

  readFilters() {
    const form = new FormData(filterForm);
    this.filters = {};
    for (const key of ["status", "workflow", "pool", "owner"]) {
      const value = String(form.get(key) || "").trim();
      if (value) this.filters[key] = value;
    }
  },

  matches(job) {
    const f = this.filters;
    return (!f.status || job.status === f.status) && (!f.workflow || job.workflow === f.workflow) && (!f.pool || job.pool === f.pool) && (!f.owner || job.owner_id === f.owner);
  },

  // New filters: start over from the newest job.
  async reset() {
    const generation = ++this.generation;
    $("jobs").setAttribute("aria-busy", "true");
    show($("jobs-error"), false);
    try {
      const page = await call(this.query());
      if (generation !== this.generation) return;
      this.rows.clear();
      tbody.replaceChildren();
      for (const job of page.jobs) this.upsert(job);
      this.setCursor(page.next_cursor);
    } catch (error) {
      if (error.status === 401) return;
      $("jobs-error").textContent = error.message;
      show($("jobs-error"), true);
    } finally {
      if (generation === this.generation) $("jobs").removeAttribute("aria-busy");
      this.updateCount();
    }
  },

  // The first page again, merged into the rows: after a reconnect (the stream has no
  // replay) or a sleeping tab. Rows are updated in place, so focus stays put.
  async refreshFirst() {
    const generation = this.generation;
    try {
      const page = await call(this.query());
      if (generation !== this.generation) return;
      for (const job of page.jobs) this.upsert(job);
      if (this.rows.size <= page.jobs.length) this.setCursor(page.next_cursor);
      this.updateCount();
    } catch {
      // The next reconnect or poll tries again.
    }
  },

  async older() {
    if (!this.cursor) return;
    const generation = this.generation;
    moreButton.disabled = true;
    try {
      const page = await call(this.query(this.cursor));
      if (generation !== this.generation) return;
      for (const job of page.jobs) this.upsert(job);
      this.setCursor(page.next_cursor);
      this.updateCount();
    } catch {
      // Left as it was; the button stays to try again.
    } finally {
      moreButton.disabled = false;
    }
  },

  setCursor(cursor) {
    this.cursor = cursor || null;
    show(moreButton, Boolean(this.cursor));
  },

  updateCount() {
    const n = this.rows.size;
    const empty = n === 0 && $("jobs").getAttribute("aria-busy") !== "true";
    show($("jobs-empty"), empty);
    show($("jobs"), !empty);
    $("jobs-count").textContent = n ? `${n} shown${this.cursor ? ", older below" : ""}` : "";
  },

  // Job ids are UUIDv7: ordering them as text orders them by creation time.
  inRange(id) {
    if (!this.cursor) return true;
    const last = tbody.lastElementChild;
    return !last || id > last.dataset.jobId;
  },

  upsert(job, { fresh = false } = {}) {
    let row = this.rows.get(job.id);
    if (row) {
      if (TERMINAL.has(row.job.status) && !TERMINAL.has(job.status)) return row;
      row.job = { ...row.job, ...job };
    } else {
      row = this.create(job);
      this.rows.set(job.id, row);
      const before = [...tbody.rows].find((tr) => tr.dataset.jobId < job.id);
      tbody.insertBefore(row.tr, before || null);
    }
    this.render(row);
    if (fresh) {
      row.tr.classList.remove("is-new");
      void row.tr.offsetWidth;
      row.tr.classList.add("is-new");
    }
    return row;
  },

  create(job) {
    const cell = (label, ...children) => h("td", { "data-label": label }, ...children);
    const parts = {
      badge: h("span", { class: "badge" }),
      retry: h("span", { class: "tag", text: "retry", hidden: true }),
      attempts: h("td", { class: "num", "data-label": "Attempts" }),
      created: h("time", {}),
      took: h("td", { class: "num", "data-label": "Took" }),
    };
    const link = jobLink(job.id);
    const tr = h(
      "tr",
      { "data-job-id": job.id },
      cell("Job", link),
      cell("Status", h("span", { class: "status-cell" }, parts.badge, parts.retry)),
      cell("Workflow", titles[job.workflow] || job.workflow),
      cell("Pool", job.pool),
      cell("Owner", h("span", { class: "owner mono", title: job.owner_id, text: job.owner_id })),
      parts.attempts,
      cell("Created", parts.created),
      parts.took,
    );
    // The whole row opens the job for a pointer; keyboards use the link in it.
    tr.addEventListener("click", (event) => {
      if (!event.target.closest("a, button")) location.hash = `job=${job.id}`;
    });
    return { job, tr, link, parts };
  },

  render(row) {
    const { job, tr, parts } = row;
    tr.dataset.status = job.status;
    parts.badge.className = `badge status-${job.status}`;
    parts.badge.textContent = LABELS[job.status] || job.status;
    show(parts.retry, Boolean(job.retry_of));
    parts.attempts.textContent = String(job.attempts ?? 0);
    parts.created.dateTime = job.created_at || "";
    parts.created.textContent = time(job.created_at);
    const ms = TERMINAL.has(job.status) ? between(job.started_at || job.created_at, job.finished_at) : null;
    parts.took.textContent = job.status === "running" ? "running" : duration(ms);
  },

  // A status frame of the admin stream: the job's new state.
  async apply(event) {
    const row = this.rows.get(event.job_id);
    const { job_id: id, owner_id: _owner, seq: _seq, outputs: _outputs, ...changes } = event;
    if (row) {
      this.upsert({ id, ...changes }, { fresh: true });
      return;
    }
    const f = this.filters;
    if ((f.status && f.status !== event.status) || (f.owner && f.owner !== event.owner_id) || !this.inRange(id)) return;
    try {
      const detail = await call(`/v1/admin/jobs/${id}`);
      if (this.matches(detail.job) && this.inRange(id)) {
        this.upsert(detail.job, { fresh: true });
        this.updateCount();
      }
    } catch {
      // Deleted meanwhile, or the session ended: nothing to add.
    }
  },
};

filterForm.addEventListener("submit", (event) => {
  event.preventDefault();
  jobs.readFilters();
  jobs.reset();
});
filterForm.addEventListener("reset", () => {
  // The form's values change after the reset event's handlers run.
  setTimeout(() => {
    jobs.readFilters();
    jobs.reset();
  }, 0);
});
for (const select of filterForm.querySelectorAll("select")) {
  select.addEventListener("change", () => {
    jobs.readFilters();
    jobs.reset();
  });
}
moreButton.addEventListener("click", () => jobs.older());

// ---------------------------------------------------------------- job detail

const dialog = $("job-dialog");
const detailBody = $("jd-body");
const detail = { id: null, opener: null, busy: false, again: false, message: null };

function hashJob() {
  const m = location.hash.match(JOB_HASH);
  return m ? m[1].toLowerCase() : null;
}

async function openJob(id) {
  if (detail.id !== id) detail.message = null;
  detail.id = id;
  if (!dialog.open) {
    detail.opener = document.activeElement;
    dialog.showModal();
  }
  $("jd-title").textContent = "Job";
  $("jd-id").textContent = id;
  detailBody.replaceChildren(h("p", { class: "muted", text: "Loading…" }));
  $("jd-title").focus();
  await loadDetail(id);
  if (detail.id === id && !dialog.contains(document.activeElement)) $("jd-title").focus();
}

async function loadDetail(id) {
  if (detail.busy) {
    detail.again = true;
    return;
  }
  detail.busy = true;
  try {
    const data = await call(`/v1/admin/jobs/${id}`);
    if (detail.id === id && dialog.open) renderDetail(data);
    if (jobs.rows.has(id)) jobs.upsert(data.job);
  } catch (error) {
    if (detail.id === id && error.status !== 401) {
      detailBody.replaceChildren(h("p", { class: "form-error", role: "alert", text: error.status === 404 ? "There is no such job." : error.message }));
    }
  } finally {
    detail.busy = false;
    if (detail.again) {
      detail.again = false;
      if (detail.id) loadDetail(detail.id);
    }
  }
}

function fact(label, ...value) {
  return h("div", { class: "fact" }, h("dt", { text: label }), h("dd", {}, ...value));
}

function scrollTable(label, head, rows) {
  return h(
    "div",
    { class: "table-scroll", tabindex: "0", role: "region", "aria-label": label },
    h("table", { class: "mini-table" }, h("thead", {}, h("tr", {}, ...head.map(([text, cls]) => h("th", { scope: "col", class: cls || false, text })))), h("tbody", {}, ...rows)),
  );
}

function timelineText(event) {
  const d = event.data || {};
  if (event.type === "status") {
    const bits = [LABELS[d.status] || d.status];
    if (d.attempts) bits.push(`attempt ${d.attempts}`);
    if (d.error && d.error.code) bits.push(d.error.code);
    return bits.join(" · ");
  }
  if (event.type === "output") return [d.kind, d.content_type, d.node_id && `node ${d.node_id}`].filter(Boolean).join(" · ");
  return Object.keys(d).length ? JSON.stringify(d) : "";
}

function paramValue(value) {
  return typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
}

function renderDetail({ job, timeline, attempts }) {
  // Re-rendered on every change of the job: keep focus on the control that had it.
  const focusKey = dialog.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  $("jd-title").textContent = titles[job.workflow] || job.workflow;
  $("jd-id").textContent = job.id;

  const actions = h("div", { class: "jd-actions" });
  if (!TERMINAL.has(job.status)) {
    actions.append(
      h("button", {
        type: "button",
        class: "button secondary small danger",
        "data-key": "cancel",
        disabled: job.status === "canceling",
        text: job.status === "canceling" ? "Stopping…" : "Cancel job",
        onclick: (e) => act(job, "cancel", e.currentTarget),
      }),
    );
  } else {
    actions.append(h("button", { type: "button", class: "button primary small", "data-key": "retry", text: "Retry as a new job", onclick: (e) => act(job, "retry", e.currentTarget) }));
  }
  const message = h("p", { class: "jd-message", role: "status" });
  // "Stopping…" says nothing more once the job has stopped: the badge says the rest.
  if (detail.message && detail.message.whileActive && TERMINAL.has(job.status)) detail.message = null;
  if (detail.message) {
    message.className = `jd-message ${detail.message.kind}`;
    message.replaceChildren(...detail.message.content);
  }

  const progress = job.progress || {};
  const live =
    job.status === "running"
      ? h(
          "div",
          { class: "job-progress" },
          h("progress", { max: "1", value: String(Math.max(0, Math.min(1, Number(progress.value) || 0))), "aria-label": "Progress" }),
          h("p", { class: "job-node", text: [progress.current_node, progress.step && progress.steps ? `step ${progress.step} of ${progress.steps}` : "", `${Math.round((progress.value || 0) * 100)}%`].filter(Boolean).join(" · ") }),
        )
      : null;

  const facts = h(
    "dl",
    { class: "facts" },
    fact("Status", statusBadge(job.status)),
    job.retry_of ? fact("Retry of", jobLink(job.retry_of)) : null,
    fact("Workflow", `${job.workflow} `, h("span", { class: "muted mono", title: job.workflow_version, text: (job.workflow_version || "").slice(0, 8) })),
    fact("Pool", job.pool),
    fact("Owner", h("span", { class: "mono wrap-any", text: job.owner_id })),
    fact("Agent", h("span", { class: "mono wrap-any", text: job.lease_owner || "–" })),
    fact("Attempts", String(job.attempts)),
    job.queue_position !== null && job.queue_position !== undefined ? fact("Queue position", String(job.queue_position)) : null,
    fact("Created", time(job.created_at)),
    fact("Waited", duration(job.metrics?.queue_ms)),
    fact("Ran", duration(job.metrics?.execution_ms)),
    fact("Finished", time(job.finished_at)),
  );

  const error = job.error
    ? h(
        "div",
        { class: "jd-error" },
        h("p", {}, h("strong", { class: "mono", text: job.error.code || "error" }), " ", job.error.message || ""),
        job.error.node_id || job.error.class_type ? h("p", { class: "muted", text: `node ${job.error.node_id || "?"}${job.error.class_type ? ` (${job.error.class_type})` : ""}` }) : null,
      )
    : null;

  const outputs = job.outputs || [];
  const outputsSection = outputs.length
    ? h(
        "section",
        { class: "jd-section" },
        h("h3", { id: "jd-outputs", text: `Outputs (${outputs.length})` }),
        job.outputs_expired_at ? h("p", { class: "muted", text: `Expired ${time(job.outputs_expired_at)}: the links answer 410.` }) : null,
        h(
          "ul",
          { class: "gallery jd-gallery" },
          ...outputs.map((o, i) =>
            h(
              "li",
              { class: "gallery-item" },
              o.kind === "image"
                ? h("a", { href: o.url, target: "_blank", rel: "noopener", class: "gallery-media", "data-key": `out-${i}` }, h("img", { src: o.url, alt: `Output ${i + 1}, node ${o.node_id}`, loading: "lazy", decoding: "async" }))
                : null,
              h("a", { href: o.url, target: "_blank", rel: "noopener", class: "out-link", "data-key": `out-link-${i}`, text: `Output ${i + 1}: ${o.content_type}, ${bytes(o.bytes)}` }),
            ),
          ),
        ),
      )
    : null;

  const params = Object.entries(job.params || {});
  const paramsSection = params.length
    ? h(
        "details",
        { class: "jd-params" },
        h("summary", { text: `Parameters (${params.length})`, "data-key": "params" }),
        h("dl", { class: "params" }, ...params.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { class: "mono", text: paramValue(v) })])),
      )
    : null;

  const attemptsSection = h(
    "section",
    { class: "jd-section" },
    h("h3", { id: "jd-attempts", text: "Attempts" }),
    attempts.length
      ? scrollTable(
          "Attempts",
          [["#", "num"], ["Backend"], ["Prompt id"], ["Started"], ["Finished"], ["Outcome"]],
          attempts.map((a) =>
            h(
              "tr",
              {},
              h("td", { class: "num", text: String(a.attempt) }),
              h("td", { class: "mono", text: a.backend }),
              h("td", { class: "mono wrap-any", text: a.prompt_id }),
              h("td", { text: time(a.started_at) }),
              h("td", { text: time(a.finished_at) }),
              h("td", {}, a.outcome ? h("span", { class: `badge status-${a.outcome in LABELS ? a.outcome : "failed"}`, text: a.outcome }) : h("span", { class: "muted", text: "running" })),
            ),
          ),
        )
      : h("p", { class: "muted", text: "No backend has run it yet." }),
  );

  const timelineSection = h(
    "section",
    { class: "jd-section" },
    h("h3", { id: "jd-timeline", text: "Timeline" }),
    scrollTable(
      "Timeline",
      [["Seq", "num"], ["Type"], ["Time"], ["What"]],
      timeline.map((e) =>
        h(
          "tr",
          { "data-seq": String(e.seq) },
          h("td", { class: "num", text: String(e.seq) }),
          h("td", { text: e.type }),
          h("td", {}, h("time", { datetime: e.at, text: time(e.at) })),
          h("td", { class: "wrap-any", text: timelineText(e) }),
        ),
      ),
    ),
  );

  const parts = [h("div", { class: "jd-top" }, actions, message), live, facts, error, outputsSection, paramsSection, attemptsSection, timelineSection];
  detailBody.replaceChildren(...parts.filter(Boolean));
  dialog.dataset.status = job.status;
  dialog.dataset.jobId = job.id;
  if (focusKey) detailBody.querySelector(`[data-key="${focusKey}"]`)?.focus();
}

async function act(job, action, button) {
  button.disabled = true;
  try {
    const result = await call(`/v1/admin/jobs/${job.id}/${action}`, { method: "POST" });
    if (action === "cancel") {
      jobs.upsert(result, { fresh: true });
      detail.message = { kind: "ok", whileActive: true, content: ["Stopping: the backend is interrupting the prompt."] };
      announce(`Job ${shortId(job.id)} ${result.status === "canceled" ? "canceled" : "is stopping"}.`);
      await loadDetail(job.id);
    } else {
      if (jobs.matches(result)) jobs.upsert(result, { fresh: true });
      jobs.updateCount();
      announce(`Retry started as job ${shortId(result.id)}.`);
      detail.message = { kind: "ok", content: ["Started as a retry of ", jobLink(job.id), "."] };
      detail.id = result.id;
      // Through the hash, so the new job is a link an operator can copy.
      history.replaceState(null, "", `#job=${result.id}`);
      await openJob(result.id);
    }
  } catch (error) {
    if (error.status === 401) return;
    detail.message = { kind: "bad", content: [error.message] };
    await loadDetail(job.id);
  }
}

$("jd-close").addEventListener("click", () => dialog.close());
// A click on the backdrop (outside the dialog's box) closes it too.
dialog.addEventListener("click", (event) => {
  if (event.target === dialog) {
    const r = dialog.getBoundingClientRect();
    const inside = event.clientX >= r.left && event.clientX <= r.right && event.clientY >= r.top && event.clientY <= r.bottom;
    if (!inside) dialog.close();
  }
});
dialog.addEventListener("close", () => {
  const id = detail.id;
  detail.id = null;
  detail.message = null;
  if (hashJob()) history.replaceState(null, "", location.pathname + location.search);
  const back = detail.opener && detail.opener.isConnected ? detail.opener : jobs.rows.get(id)?.link;
  if (back) back.focus();
});
window.addEventListener("hashchange", () => {
  const id = hashJob();
  if (id && running) openJob(id);
  else if (!id && dialog.open) dialog.close();
});

// ---------------------------------------------------------------- live

let source = null;
let retryMs = 1000;
let retryTimer = null;

function setConnection(state) {
  const conn = document.querySelector("[data-conn]");
  conn.textContent = CONNECTION[state] || state;
  conn.dataset.state = state;
}

function openEvents() {
  source = new EventSource("/v1/admin/events");
  source.addEventListener("open", () => {
    retryMs = 1000;
    setConnection("live");
    // The admin stream has no replay: read the first page again after every
    // (re)connect, so a change made while it was down is not missed.
    jobs.refreshFirst();
  });
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) {
      setConnection("reconnecting");
      return;
    }
    setConnection("offline");
    // Closed for good: maybe the session ended (the call shows the sign-in form).
    retryTimer = setTimeout(async () => {
      try {
        await call("/v1/admin/session");
      } catch (error) {
        if (error.status === 401) return;
      }
      if (running) openEvents();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  });
  source.addEventListener("status", (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    jobs.apply(data);
    if (data.job_id === detail.id && dialog.open) loadDetail(data.job_id);
  });
}

function start() {
  if (running) return;
  running = true;
  setConnection("connecting");
  jobs.readFilters();
  jobs.reset();
  refreshOverview().finally(schedulePoll);
  openEvents();
  const id = hashJob();
  if (id) openJob(id);
}

function stop() {
  running = false;
  clearTimeout(pollTimer);
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
}

if (!dashboard.hidden) start();
else tokenInput.focus();

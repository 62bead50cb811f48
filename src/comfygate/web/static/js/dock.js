// The job dock: the visitor's jobs, newest first, kept live by the page's one stream.

import { api } from "./api.js";
import { h, show } from "./dom.js";

const TERMINAL = new Set(["succeeded", "failed", "canceled", "expired"]);
const ACTIVE = new Set(["queued", "running", "canceling"]);
const LABELS = {
  queued: "Queued",
  running: "Running",
  canceling: "Stopping",
  succeeded: "Done",
  failed: "Failed",
  canceled: "Canceled",
  expired: "Expired",
};
const PAGE_SIZE = 10;
const CONNECTION = { live: "Live", reconnecting: "Reconnecting…", offline: "Offline, retrying…" };

function shortTime(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  const today = new Date().toDateString() === at.toDateString();
  return today
    ? at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : at.toLocaleDateString([], { month: "short", day: "numeric" });
}

function extension(contentType) {
  const sub = (contentType || "").split("/")[1] || "bin";
  return { jpeg: "jpg", "svg+xml": "svg", plain: "txt" }[sub] || sub;
}

function summary(params) {
  if (typeof params.prompt === "string" && params.prompt) return params.prompt;
  return Object.entries(params)
    .filter(([, v]) => typeof v !== "object")
    .slice(0, 4)
    .map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`)
    .join(" · ");
}

export class Dock {
  constructor(root, { titles = {}, onRunAgain }) {
    this.root = root;
    this.titles = titles;
    this.onRunAgain = onRunAgain;
    this.list = root.querySelector("[data-jobs]");
    this.empty = root.querySelector("[data-empty]");
    this.moreButton = root.querySelector("[data-more]");
    this.conn = root.querySelector("[data-conn]");
    this.announcer = root.querySelector("[data-announce]");
    this.entries = new Map();
    this.pending = new Set();
    this.cursor = undefined;
    this.moreButton.addEventListener("click", () => this.loadOlder());
  }

  title(job) {
    return this.titles[job.workflow] || job.workflow;
  }

  setConnection(state) {
    this.conn.textContent = CONNECTION[state] || state;
    this.conn.dataset.state = state;
  }

  announce(text) {
    this.announcer.textContent = text;
  }

  // The first page again: after a reconnect or a sleeping tab, whatever the stream
  // could not replay (a job that finished while we were away) is read here.
  async refresh() {
    const page = await api(`/v1/jobs?limit=${PAGE_SIZE}`);
    for (const job of page.jobs) this.upsert(job);
    if (this.cursor === undefined) this.setCursor(page.next_cursor);
    this.updateEmpty();
  }

  async loadOlder() {
    if (!this.cursor) return;
    this.moreButton.disabled = true;
    try {
      const page = await api(`/v1/jobs?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(this.cursor)}`);
      for (const job of page.jobs) this.upsert(job);
      this.setCursor(page.next_cursor);
    } finally {
      this.moreButton.disabled = false;
    }
  }

  setCursor(cursor) {
    this.cursor = cursor || null;
    show(this.moreButton, Boolean(this.cursor));
  }

  updateEmpty() {
    show(this.empty, this.entries.size === 0);
  }

  async fetchJob(id) {
    if (this.pending.has(id)) return;
    this.pending.add(id);
    try {
      this.upsert(await api(`/v1/jobs/${id}`));
    } catch {
      // Not ours or gone: nothing to show.
    } finally {
      this.pending.delete(id);
    }
  }

  apply(type, data) {
    const entry = this.entries.get(data.job_id || data.id);
    if (type === "status") {
      this.upsert(data);
      return;
    }
    if (!entry) {
      this.fetchJob(data.job_id);
      return;
    }
    if (TERMINAL.has(entry.job.status)) return;
    if (type === "progress") {
      const { job_id: _, ...progress } = data;
      entry.job.progress = progress;
      if (entry.job.status === "queued") entry.job.status = "running";
      this.render(entry);
    } else if (type === "preview") {
      entry.preview = data.url;
      this.render(entry);
    } else if (type === "output") {
      const outputs = entry.job.outputs || [];
      if (!outputs.some((o) => o.sha256 === data.sha256 && o.node_id === data.node_id)) {
        entry.job.outputs = [...outputs, data];
        this.render(entry);
      }
    }
  }

  upsert(job, { fresh = false } = {}) {
    let entry = this.entries.get(job.id);
    if (entry) {
      const was = entry.job;
      if (TERMINAL.has(was.status) && !TERMINAL.has(job.status)) return entry;
      const next = { ...was, ...job };
      if (was.status === job.status && !TERMINAL.has(job.status)) {
        // Lists and status events can be older than the last progress event.
        if ((was.progress?.value || 0) > (job.progress?.value || 0)) next.progress = was.progress;
      }
      entry.job = next;
      if (!TERMINAL.has(was.status) && TERMINAL.has(next.status)) {
        this.announce(`${this.title(next)}: ${LABELS[next.status].toLowerCase()}.`);
      }
    } else {
      entry = this.create(job);
      this.entries.set(job.id, entry);
      this.insert(entry);
      if (fresh) this.announce(`${this.title(job)} started.`);
    }
    this.render(entry);
    this.updateEmpty();
    if (fresh) {
      entry.el.classList.add("is-new");
      const rect = entry.el.getBoundingClientRect();
      if (rect.top < 0 || rect.top > window.innerHeight - 80) {
        entry.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
      }
    }
    return entry;
  }

  insert(entry) {
    // Job ids are UUIDv7: ordering them as text orders them by creation time.
    const id = entry.job.id;
    const before = [...this.list.children].find((li) => li.dataset.jobId < id);
    this.list.insertBefore(entry.el, before || null);
  }

  create(job) {
    const id = job.id;
    const titleId = `job-${id}-title`;
    const parts = {};
    parts.badge = h("span", { class: "badge" });
    parts.time = h("time", { datetime: job.created_at || "" });
    parts.prompt = h("p", { class: "job-prompt" });
    parts.bar = h("progress", { max: "1", value: "0", "aria-label": "Progress" });
    parts.node = h("p", { class: "job-node" });
    parts.progress = h("div", { class: "job-progress" }, parts.bar, parts.node);
    parts.previewImg = h("img", { alt: "Live preview of the running job", decoding: "async" });
    parts.preview = h("figure", { class: "job-preview", hidden: true }, parts.previewImg, h("figcaption", { text: "Live preview" }));
    parts.gallery = h("ul", { class: "gallery" });
    parts.error = h("p", { class: "job-error", hidden: true });
    parts.cancel = h("button", { type: "button", "data-action": "cancel", class: "button secondary small", text: "Cancel", onclick: () => this.cancel(entry) });
    parts.again = h("button", { type: "button", "data-action": "again", class: "button secondary small", text: "Run again with these settings", onclick: () => this.onRunAgain(entry.job) });
    parts.share = h("button", { type: "button", "data-action": "share", class: "button ghost small", text: "Share", "aria-expanded": "false", onclick: () => this.share(entry) });
    const linkId = `job-${id}-link`;
    parts.shareInput = h("input", { id: linkId, type: "text", readonly: true, class: "share-input" });
    parts.copy = h("button", { type: "button", class: "button secondary small", text: "Copy", onclick: () => this.copy(entry) });
    parts.shareBox = h(
      "div",
      { class: "share-box", hidden: true },
      h("label", { for: linkId, text: "Anyone with this link can see this job" }),
      h("div", { class: "share-row" }, parts.shareInput, parts.copy),
    );
    const el = h(
      "li",
      { class: "job", "data-job-id": id },
      h(
        "article",
        { class: "job-card", "aria-labelledby": titleId },
        h(
          "div",
          { class: "job-head" },
          h("div", { class: "job-heading" }, h("h3", { class: "job-title", id: titleId, text: this.title(job) }), h("p", { class: "job-meta" }, parts.time)),
          parts.badge,
        ),
        parts.prompt,
        parts.progress,
        parts.preview,
        parts.gallery,
        parts.error,
        h("div", { class: "job-actions" }, parts.cancel, parts.again, parts.share),
        parts.shareBox,
      ),
    );
    const entry = { job, el, parts, preview: null, galleryKey: "" };
    return entry;
  }

  render(entry) {
    const { job, parts, el } = entry;
    const status = job.status;
    const progress = job.progress || {};
    el.dataset.status = status;
    parts.badge.textContent = LABELS[status] || status;
    parts.badge.className = `badge status-${status}`;
    parts.time.textContent = shortTime(job.created_at);
    const text = summary(job.params || {});
    parts.prompt.textContent = text;
    show(parts.prompt, Boolean(text));

    const active = ACTIVE.has(status);
    show(parts.progress, active);
    if (active) {
      const value = Math.max(0, Math.min(1, Number(progress.value) || 0));
      parts.bar.value = value;
      parts.bar.setAttribute("aria-valuetext", `${Math.round(value * 100)} percent`);
      parts.node.textContent = this.nodeText(status, progress, value);
    }
    show(parts.preview, active && Boolean(entry.preview));
    if (active && entry.preview && parts.previewImg.getAttribute("src") !== entry.preview) {
      parts.previewImg.src = entry.preview;
    }

    this.renderGallery(entry);
    const error = job.error && job.error.message;
    parts.error.textContent = error ? `${error}` : "";
    show(parts.error, Boolean(error) && status === "failed");

    show(parts.cancel, status === "queued" || status === "running" || status === "canceling");
    parts.cancel.disabled = status === "canceling";
    parts.cancel.textContent = status === "canceling" ? "Stopping…" : "Cancel";
  }

  nodeText(status, progress, value) {
    if (status === "queued") return "Waiting for a free backend…";
    if (status === "canceling") return "Stopping…";
    const bits = [progress.current_node || (value > 0 ? "Working" : "Starting")];
    if (progress.step && progress.steps) bits.push(`step ${progress.step} of ${progress.steps}`);
    bits.push(`${Math.round(value * 100)}%`);
    return bits.join(" · ");
  }

  renderGallery(entry) {
    const outputs = entry.job.status === "succeeded" || entry.job.outputs?.length ? entry.job.outputs || [] : [];
    const key = outputs.map((o) => o.url).join("\n");
    if (key === entry.galleryKey) return;
    entry.galleryKey = key;
    const title = this.title(entry.job);
    const short = entry.job.id.slice(-6);
    entry.parts.gallery.replaceChildren(
      ...outputs.map((out, i) => {
        const n = i + 1;
        const name = `${entry.job.workflow}-${short}-${n}.${extension(out.content_type)}`;
        let media = null;
        if (out.kind === "image") {
          media = h("a", { href: out.url, target: "_blank", rel: "noopener", class: "gallery-media" }, h("img", { src: out.url, alt: `Result ${n} of ${title}`, decoding: "async" }));
        } else if (out.kind === "video") {
          media = h("video", { src: out.url, controls: true, muted: true, loop: true, playsinline: true, class: "gallery-media", "aria-label": `Result ${n} of ${title}` });
        } else if (out.kind === "audio") {
          media = h("audio", { src: out.url, controls: true, "aria-label": `Result ${n} of ${title}` });
        } else if (out.kind === "text") {
          media = h("pre", { class: "gallery-text", text: "…" });
          fetch(out.url)
            .then((r) => r.text())
            .then((t) => (media.textContent = t))
            .catch(() => (media.textContent = "(could not load the text)"));
        }
        return h(
          "li",
          { class: "gallery-item" },
          media,
          h("a", { class: "button secondary small", href: out.url, download: name, "aria-label": `Download result ${n} of ${title}`, text: "Download" }),
        );
      }),
    );
  }

  async cancel(entry) {
    entry.parts.cancel.disabled = true;
    try {
      this.upsert(await api(`/v1/jobs/${entry.job.id}/cancel`, { method: "POST" }));
    } catch {
      await this.fetchJob(entry.job.id);
    } finally {
      this.render(entry);
    }
  }

  async share(entry) {
    const { parts } = entry;
    const open = parts.shareBox.hidden;
    if (open && !parts.shareInput.value) {
      const link = await api(`/v1/jobs/${entry.job.id}/share`, { method: "POST" });
      parts.shareInput.value = new URL(link.url, location.origin).href;
    }
    show(parts.shareBox, open);
    parts.share.setAttribute("aria-expanded", String(open));
    if (open) {
      parts.shareInput.focus();
      parts.shareInput.select();
    }
  }

  async copy(entry) {
    const { shareInput, copy } = entry.parts;
    try {
      await navigator.clipboard.writeText(shareInput.value);
    } catch {
      shareInput.select();
      document.execCommand("copy");
    }
    copy.textContent = "Copied";
    setTimeout(() => (copy.textContent = "Copy"), 2000);
  }
}

// What every page with a dock does: fill it, then keep it live over one stream.

import { pageData } from "./api.js";
import { Dock } from "./dock.js";
import { openStream } from "./stream.js";

export function startDock({ onRunAgain }) {
  const data = pageData();
  const root = document.querySelector("[data-dock]");
  const dock = new Dock(root, { titles: data.titles || {}, onRunAgain });
  const refresh = () => dock.refresh().catch(() => dock.setConnection("offline"));
  refresh();
  openStream({
    onEvent: (type, payload) => dock.apply(type, payload),
    // After every (re)connect: read the first page again, so nothing missed while the
    // connection was down is lost, whatever the stream itself could replay.
    onOpen: () => refresh(),
    onState: (state) => dock.setConnection(state),
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  return { dock, data };
}

export function runAgainElsewhere(job) {
  location.href = `/w/${encodeURIComponent(job.workflow)}?again=${encodeURIComponent(job.id)}`;
}

// The page's one event connection: GET /v1/events carries every job of this visitor.
// One, not one per job: browsers allow six connections per host, and a dock with
// several running jobs must not starve its own image loads.

const TYPES = ["status", "progress", "preview", "output"];

export function openStream({ onEvent, onOpen, onState }) {
  let source = null;
  let lastId = "";
  let retryMs = 1000;
  let opens = 0;

  function connect() {
    // A fresh EventSource only happens after the browser gave up on the old one;
    // pass the cursor on so the server still replays what we missed.
    const url = lastId ? `/v1/events?last_event_id=${encodeURIComponent(lastId)}` : "/v1/events";
    source = new EventSource(url);
    source.addEventListener("open", () => {
      retryMs = 1000;
      opens += 1;
      onState("live");
      onOpen(opens === 1);
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        onState("offline");
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      } else {
        // The browser reconnects on its own and sends Last-Event-ID.
        onState("reconnecting");
      }
    });
    for (const type of TYPES) {
      source.addEventListener(type, (event) => {
        if (event.lastEventId) lastId = event.lastEventId;
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        onEvent(type, data);
      });
    }
  }

  connect();
  return { close: () => source && source.close() };
}

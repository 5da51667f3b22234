// Inbox: tab counts follow ticket / callback / call events pushed over SSE (/api/inbox/events);
// each event only says "something changed", so we re-read our own counts, at most a few times a second.
"use strict";
(function () {
  const inbox = document.getElementById("inbox");
  if (!inbox || !window.EventSource) return;
  const stale = document.getElementById("inbox-stale");
  let timer = null;
  async function refresh() {
    try {
      const response = await fetch("/api/inbox/counts", {credentials: "same-origin"});
      if (!response.ok) return;
      const counts = await response.json();
      let changed = false;
      for (const el of inbox.querySelectorAll(".count[data-count]")) {
        const value = String(counts[el.dataset.count] ?? el.textContent);
        if (el.textContent !== value) {
          el.textContent = value;
          changed = true;
        }
      }
      if (changed && stale) stale.hidden = false;
    } catch (err) {
      // Counts catch up on the next event.
    }
  }
  const source = new EventSource("/api/inbox/events");
  source.addEventListener("changed", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
  source.addEventListener("open", refresh);
})();

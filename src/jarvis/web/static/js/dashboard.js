// The dashboard keeps itself current: every so often (and when the execution dialog
// closes) it fetches the page again and swaps in the figures, lists and charts. It never
// swaps a region the viewer is using: one holding the keyboard focus or an open <details>.
// Without JavaScript the page is simply as fresh as its last load.

const REFRESH_MS = 30000;
const root = document.querySelector("[data-dashboard]");
let timer = null;
let busy = false;

function inUse(region) {
  return region.contains(document.activeElement) || region.querySelector("details[open]") !== null;
}

async function refresh() {
  if (busy || document.hidden || !root) return;
  busy = true;
  try {
    const response = await fetch(window.location.href, {
      headers: { Accept: "text/html" },
      credentials: "same-origin",
    });
    if (!response.ok || response.redirected) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of root.querySelectorAll("[data-live]")) {
      const next = fresh.querySelector(`[data-live="${region.dataset.live}"]`);
      if (next && !inUse(region)) region.replaceWith(document.importNode(next, true));
    }
  } catch {
    // Offline for a moment: the next tick tries again.
  } finally {
    busy = false;
  }
}

function schedule() {
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

if (root) {
  schedule();
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
  // A command run from the command bar has probably changed what the dashboard shows.
  document.addEventListener("dialog:closed", () => {
    refresh();
    schedule();
  });
}

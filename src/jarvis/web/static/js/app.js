// Behaviour every page shares: dialogs, toasts and in-place form submission.
// Pages work without it; this module only makes them quicker to use.

/** The CSRF token of the signed-in session (the server puts it on <body>). */
export function csrfToken() {
  return document.body.dataset.csrf || "";
}

/** Show a short message in the page's live region; it goes away by itself. */
export function toast(message, kind = "info", ms = 5000) {
  const region = document.querySelector("[data-toasts]");
  if (!region) return;
  const item = document.createElement("div");
  item.className = `toast ${kind}`;
  item.textContent = message;
  region.append(item);
  setTimeout(() => item.remove(), ms);
}

// --- dialogs: <dialog> opened modally keeps focus inside; focus returns to the opener ---
const openers = new WeakMap();

export function openDialog(dialog, opener = document.activeElement) {
  if (!dialog || dialog.open) return;
  openers.set(dialog, opener);
  dialog.showModal();
  const first =
    dialog.querySelector("[autofocus]") ||
    dialog.querySelector(
      "input:not([type=hidden]):not([disabled]), select, textarea, button:not([data-dialog-close]):not([disabled])",
    );
  (first || dialog.querySelector("[data-dialog-close]"))?.focus();
}

export function closeDialog(dialog) {
  if (dialog?.open) dialog.close();
}

function restoreFocus(event) {
  const dialog = event.target;
  const opener = openers.get(dialog);
  if (opener && document.contains(opener)) opener.focus();
  dialog.dispatchEvent(new CustomEvent("dialog:closed", { bubbles: true }));
}

// Focus stays inside an open modal dialog: Tab from its last control goes to its first.
function trapFocus(event) {
  if (event.key !== "Tab") return;
  const dialog = document.querySelector("dialog[open]");
  if (!dialog) return;
  const focusable = [...dialog.querySelectorAll(
    "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select, textarea, [tabindex]:not([tabindex='-1'])",
  )].filter((el) => el.offsetParent !== null || el === document.activeElement);
  if (focusable.length === 0) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (event.shiftKey && (document.activeElement === first || !dialog.contains(document.activeElement))) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (document.activeElement === last || !dialog.contains(document.activeElement))) {
    event.preventDefault();
    first.focus();
  }
}

document.addEventListener("click", (event) => {
  const open = event.target.closest("[data-dialog-open]");
  if (open) {
    event.preventDefault();
    openDialog(document.getElementById(open.dataset.dialogOpen), open);
    return;
  }
  const close = event.target.closest("[data-dialog-close]");
  if (close) closeDialog(close.closest("dialog"));
});
document.addEventListener("keydown", trapFocus);
document.addEventListener("close", restoreFocus, true);

// --- in-place forms: <form data-enhance> posts with fetch and swaps in the answer -------
/** Replace this page's <main> with the one in `html`, as if navigated to `url`. */
export function swapMain(html, url, { push = true } = {}) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  const next = doc.querySelector("main");
  const current = document.querySelector("main");
  if (!next || !current) {
    window.location.assign(url);
    return;
  }
  next.dataset.swapped = "";
  current.replaceWith(next);
  document.title = doc.title;
  if (push && url !== window.location.href) history.pushState({ swapped: true }, "", url);
  const newToasts = doc.querySelectorAll("[data-toasts] .toast");
  newToasts.forEach((t) => toast(t.textContent, [...t.classList].find((c) => c !== "toast")));
  const invalid = next.querySelector("[aria-invalid='true']");
  (invalid || next).focus();
  document.dispatchEvent(new CustomEvent("page:swapped", { detail: { main: next } }));
}

async function submitInPlace(event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.matches("[data-enhance]")) return;
  event.preventDefault();
  const submitter = event.submitter;
  const body = new URLSearchParams(new FormData(form, submitter));
  const buttons = form.querySelectorAll("button, input[type=submit]");
  buttons.forEach((b) => b.setAttribute("aria-busy", "true"));
  try {
    // The attributes, not form.action / form.method: a control named "action" (or
    // "method") shadows those properties. A submit button's formaction wins.
    const target = submitter?.getAttribute("formaction") || form.getAttribute("action") || "";
    const url = new URL(target, window.location.href);
    const method = (submitter?.getAttribute("formmethod") || form.getAttribute("method") || "get").toUpperCase();
    const init = { method, headers: { "X-CSRF-Token": csrfToken(), Accept: "text/html" }, credentials: "same-origin" };
    if (method === "GET") url.search = body.toString();
    else init.body = body;
    const response = await fetch(url, init);
    const html = await response.text();
    swapMain(html, response.url, { push: response.redirected });
  } catch (error) {
    toast(`Could not reach the server: ${error.message}. Nothing was changed.`, "danger");
  } finally {
    buttons.forEach((b) => b.removeAttribute("aria-busy"));
  }
}
document.addEventListener("submit", submitInPlace);

// After an in-place submission the history has our entries: going back loads that page.
// Only then: a link to an anchor on the page (the skip link) fires popstate too, and a
// reload there would lose the focus it moved.
window.addEventListener("popstate", () => {
  if (history.state?.swapped || document.querySelector("main[data-swapped]")) window.location.reload();
});

// The server-rendered toast fades out too.
for (const t of document.querySelectorAll("[data-toasts] .toast")) setTimeout(() => t.remove(), 6000);

// The light/dark button: without a saved choice the page follows the system, so the button
// offers the opposite of what the system shows now (the server cannot know it).
function followSystemMode() {
  if (document.documentElement.dataset.mode) return;
  const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
  for (const form of document.querySelectorAll(".mode-form")) {
    form.elements.mode.value = dark ? "light" : "dark";
    const button = form.querySelector("[data-mode-toggle]");
    button.setAttribute("aria-label", `Switch to ${dark ? "light" : "dark"} mode`);
    button.querySelector("span").textContent = dark ? "☀" : "☾";
  }
}
followSystemMode();
window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", followSystemMode);

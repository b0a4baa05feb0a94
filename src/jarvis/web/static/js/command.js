// The command bar on every page (partials/command_bar.html): runs the command through the
// JSON API and shows it live in the execution dialog (#execution-dialog). Without
// JavaScript the form posts to /executions and lands on the execution's page instead.

// Modules are instantiated per URL: every page loads them unversioned (rendering.asset_url),
// so these imports share the page's one copy of app.js and live.js.
import { csrfToken, openDialog, toast } from "./app.js";

let liveModule = null;
async function live() {
  liveModule ??= await import("./live.js");
  return liveModule;
}

const form = document.querySelector("form[data-command-bar]");
const dialog = document.getElementById("execution-dialog");
const dialogBody = dialog?.querySelector("[data-execution-dialog-body]");

function commandInput() {
  return form.querySelector("[name=command]");
}

/** Grow the field with its text (up to the CSS max-height, then it scrolls). */
function fit(input = commandInput()) {
  input.style.height = "auto";
  input.style.height = `${input.scrollHeight + input.offsetHeight - input.clientHeight}px`;
}

/** Enter runs the command; Shift+Enter (and an IME composing text) keeps its newline. */
function onKey(event) {
  if (event.key !== "Enter" || event.isComposing) return;
  if (event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
  event.preventDefault();
  form.requestSubmit();
}

function showError(message) {
  const holder = form.querySelector("[data-command-error]");
  const input = commandInput();
  if (!holder) {
    toast(message, "danger");
    return;
  }
  holder.textContent = message;
  holder.hidden = false;
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", `${holder.id} command-hint`);
  input.focus();
}

function clearError() {
  const holder = form.querySelector("[data-command-error]");
  const input = commandInput();
  if (holder) {
    holder.hidden = true;
    holder.textContent = "";
  }
  input.removeAttribute("aria-invalid");
  input.setAttribute("aria-describedby", "command-hint");
}

function problemText(problem, status) {
  const fields = (problem?.errors || []).map((e) => e.msg).filter(Boolean);
  if (fields.length) return fields.join("; ");
  return problem?.detail || `The server answered ${status}.`;
}

function message(text, href) {
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = text;
  if (href) {
    p.append(" ");
    const link = document.createElement("a");
    link.href = href;
    link.textContent = "Open the execution's page";
    p.append(link);
  }
  return p;
}

/** Open the execution dialog on `executionId` and follow it live. */
export async function showExecution(executionId, opener = commandInput()) {
  const href = `/executions/${encodeURIComponent(executionId)}`;
  if (!dialog || !dialogBody) {
    window.location.assign(href);
    return;
  }
  const { attach, detach } = await live();
  detach(dialogBody.querySelector("[data-execution-panel]"));
  dialogBody.replaceChildren(message("Starting…", href));
  openDialog(dialog, opener);
  try {
    const response = await fetch(`${href}?fragment=1`, {
      headers: { Accept: "text/html" },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    // The server's own markup (every value escaped there); it holds no script.
    dialogBody.innerHTML = await response.text();
    const panel = dialogBody.querySelector("[data-execution-panel]");
    if (!panel) throw new Error("the answer holds no execution");
    attach(panel);
  } catch (error) {
    dialogBody.replaceChildren(message(`Could not show the execution: ${error.message}.`, href));
  }
}

async function run(event) {
  event.preventDefault();
  const data = new FormData(form);
  const command = String(data.get("command") || "").trim();
  const persona = String(data.get("persona") || "");
  if (!command) {
    showError("Type a command for JARVIS to run.");
    return;
  }
  clearError();
  const button = form.querySelector("button[type=submit]");
  button?.setAttribute("aria-busy", "true");
  let response;
  try {
    response = await fetch("/api/agent-executions", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": csrfToken(),
      },
      body: JSON.stringify({ command, persona }),
      credentials: "same-origin",
    });
  } catch (error) {
    toast(`Could not reach the server: ${error.message}. The command did not run.`, "danger");
    return;
  } finally {
    button?.removeAttribute("aria-busy");
  }
  const body = await response.json().catch(() => null);
  if (response.status !== 202 || !body?.executionId) {
    const text = problemText(body, response.status);
    if (response.status === 422) showError(text);
    else if (response.status === 429) toast(`Too many commands: ${text}`, "danger");
    else toast(text, "danger");
    return;
  }
  commandInput().value = "";
  fit();
  await showExecution(body.executionId);
}

if (form) {
  form.addEventListener("submit", run);
  commandInput().addEventListener("keydown", onKey);
  commandInput().addEventListener("input", () => {
    fit();
    if (commandInput().getAttribute("aria-invalid")) clearError();
  });
  fit();
}

// Closing the dialog (its button, Escape) stops following the execution.
dialog?.addEventListener("close", async () => {
  const panel = dialogBody?.querySelector("[data-execution-panel]");
  if (!panel) return;
  const { detach } = await live();
  detach(panel);
  dialogBody.replaceChildren();
});

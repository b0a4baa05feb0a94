// The live execution view: follows one execution's events over the WebSocket
// (/api/agent-executions/ws, docs/realtime.md) and updates the server-rendered panel
// ([data-execution-panel], templates/executions/_panel.html) as they arrive.
//
// The panel says which event it was rendered after (data-last-seq); the view subscribes
// after it, keeps the last seq it applied, and after a drop reconnects with backoff and
// resubscribes after that seq: no event is missed and none is applied twice.

// The page's one copy of app.js (modules are unversioned: rendering.asset_url).
import { csrfToken, toast } from "./app.js";

const TERMINAL = new Set([
  "execution_completed", "execution_failed", "execution_cancelled", "execution_rejected",
]);
const FINAL = new Set(["completed", "failed", "cancelled", "rejected"]);
const CANCELLABLE = new Set(["queued", "running", "awaiting_approval"]);
const UNSETTLED = new Set(["pending", "running", "awaiting_approval"]);
// A replayed event may describe a step the page already shows further on (the page is read
// after its data-last-seq): within one attempt a step only moves forward.
const RANK = {
  pending: 0, running: 1, awaiting_approval: 2,
  completed: 3, failed: 3, skipped: 3, cancelled: 3, rejected: 3,
};
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
// Closed on purpose by the server: reconnecting would not help (docs/realtime.md).
const FINAL_CLOSE = new Map([
  [1008, "Not signed in any more: sign in again, then reload the page."],
  [4001, "Your session ended: sign in again, then reload the page."],
]);
const DONE_MESSAGES = {
  approve: "Approved; the execution continues",
  reject: "Rejected; the execution has ended",
  cancel: "Cancellation requested",
};

const label = (status) => String(status).replaceAll("_", " ");
const cssStatus = (status) => String(status).replaceAll("_", "-");

/** Milliseconds as the server's `duration` filter writes them. */
export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

function setBadge(holder, status, text = label(status)) {
  const badge = holder?.querySelector(".badge");
  if (!badge) return;
  badge.className = `badge status-${cssStatus(status)}`;
  badge.textContent = text;
}

class LiveView {
  constructor(panel) {
    this.panel = panel;
    this.id = panel.dataset.executionId;
    this.lastSeq = Number(panel.dataset.lastSeq || 0);
    this.canCancel = panel.dataset.canCancel === "true";
    this.state = panel.querySelector("[data-live-state]");
    this.failures = 0;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
    this.onOnline = () => { if (this.timer) this.reconnectNow(); };
    panel.addEventListener("submit", (event) => this.submitAction(event));
    window.addEventListener("online", this.onOnline);
  }

  start() {
    if (FINAL.has(this.panel.dataset.status)) {
      this.finish("");
      return;
    }
    this.connect();
  }

  /** Stop following (the dialog closed, or the execution ended). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    window.removeEventListener("online", this.onOnline);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }

  finish(text) {
    this.setState(text, "finished");
    this.stop();
  }

  setState(text, state) {
    if (!this.state) return;
    this.state.textContent = text;
    this.state.dataset.state = state;
  }

  // --- the connection ---------------------------------------------------------------------

  connect() {
    this.timer = null;
    if (this.stopped) return;
    if (!this.panel.isConnected) {
      this.stop();
      return;
    }
    this.setState(this.failures ? "Reconnecting…" : "Connecting…", this.failures ? "reconnecting" : "connecting");
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${window.location.host}/api/agent-executions/ws`);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.addEventListener("message", (frame) => this.onMessage(ws, frame));
    ws.addEventListener("close", (closed) => this.onClose(ws, closed));
  }

  subscribe(ws) {
    ws.send(JSON.stringify({ type: "subscribe-execution", executionId: this.id, afterSeq: this.lastSeq }));
  }

  onClose(ws, closed) {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.stopped) return;
    const why = FINAL_CLOSE.get(closed.code);
    if (why) {
      this.finish(why);
      return;
    }
    this.retry();
  }

  retry() {
    const wait = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
    this.failures += 1;
    this.setState("Reconnecting…", "reconnecting");
    // Jitter, so that many pages dropped at once do not come back at once.
    this.timer = setTimeout(() => this.connect(), wait * (0.75 + Math.random() * 0.5));
  }

  reconnectNow() {
    clearTimeout(this.timer);
    this.connect();
  }

  onMessage(ws, frame) {
    if (ws !== this.ws) return;
    let message;
    try {
      message = JSON.parse(frame.data);
    } catch {
      return;
    }
    switch (message.type) {
      case "connection-established":
        this.subscribe(ws);
        return;
      case "subscribed":
        this.failures = 0;
        this.setState("Live", "live");
        return;
      case "heartbeat":
        ws.send(JSON.stringify({ type: "pong" }));
        return;
      case "error":
        this.onError(ws, message);
        return;
      default:
        break;
    }
    if (message.executionId !== this.id || typeof message.seq !== "number") return;
    if (message.seq <= this.lastSeq) return; // already applied
    if (message.seq > this.lastSeq + 1) {
      // Never expected (the server replays without gaps); ask again after the last one.
      this.subscribe(ws);
      return;
    }
    this.lastSeq = message.seq;
    this.panel.dataset.lastSeq = String(message.seq);
    this.apply(message);
    if (TERMINAL.has(message.type)) this.finish(`Finished: ${label(this.panel.dataset.status)}`);
  }

  onError(ws, message) {
    if (message.executionId && message.executionId !== this.id) return;
    if (message.code === "forbidden" || message.code === "not_found") {
      this.finish(message.message || "This execution cannot be followed.");
    } else if (message.code === "unavailable") {
      this.setState("Reconnecting…", "reconnecting");
      setTimeout(() => { if (ws === this.ws && ws.readyState === WebSocket.OPEN) this.subscribe(ws); }, 2000);
    }
  }

  // --- applying events ------------------------------------------------------------------

  apply(m) {
    switch (m.type) {
      case "execution_queued":
        this.setStatus("queued");
        break;
      case "execution_started":
      case "execution_resumed":
        this.setStatus("running");
        break;
      case "layer_started":
        this.setLayer(m.layer, "running");
        break;
      case "step_started":
        this.updateStep(m, { status: "running", attempt: m.attempt, error: "" });
        break;
      case "step_skipped":
        this.updateStep(m, { status: "skipped", output: m.reason || "" });
        break;
      case "step_completed":
        this.updateStep(m, {
          status: m.status, attempt: m.attempt, durationMs: m.durationMs,
          output: m.outputPreview || "", error: "",
        });
        break;
      case "step_failed":
        this.updateStep(m, m.willRetry
          ? { status: "running", attempt: m.attempt, error: `Attempt ${m.attempt} failed: ${m.error}. Retrying in ${m.retryInSeconds ?? "a few"} s.` }
          : { status: "failed", attempt: m.attempt, durationMs: m.durationMs, error: m.error });
        break;
      case "step_cancelled":
        this.updateStep(m, { status: "cancelled", attempt: m.attempt });
        break;
      case "layer_completed":
        this.setLayer(m.layer, m.status);
        if (m.plan) this.renderPlan(m.plan);
        break;
      case "awaiting_approval":
        for (const step of m.steps || []) {
          this.updateStep({ ...step, layer: step.layer || m.layer }, { status: "awaiting_approval", output: step.outputPreview || "" });
        }
        this.setLayer(m.layer, "awaiting_approval");
        this.renderApprovalSteps(m.steps || []);
        this.setStatus("awaiting_approval");
        break;
      case "step_approved":
      case "step_rejected": {
        const approved = m.type === "step_approved";
        const comment = m.comment ? `: “${m.comment}”` : "";
        this.updateStep(m, {
          status: approved ? "completed" : "rejected",
          decision: `${approved ? "Approved" : "Rejected"} by ${m.decidedBy}${comment}`,
        });
        if (approved && !this.panel.querySelector('[data-step][data-status="awaiting_approval"]')) {
          this.setLayer(m.layer, "running");
          this.setStatus("queued");
        }
        break;
      }
      default:
        if (TERMINAL.has(m.type)) this.end(m);
    }
  }

  end(m) {
    const status = m.status || m.type.replace("execution_", "");
    this.setStatus(status);
    if (m.durationMs !== undefined && m.durationMs !== null) {
      const holder = this.panel.querySelector("[data-execution-duration]");
      if (holder) holder.textContent = formatDuration(m.durationMs);
    }
    const error = this.panel.querySelector("[data-execution-error]");
    if (error && m.error) {
      error.textContent = m.error;
      error.hidden = false;
    }
    if (m.response) {
      const result = this.panel.querySelector("[data-result]");
      result.querySelector("[data-result-text]").textContent = m.response;
      result.hidden = false;
    }
    // Steps and layers the end left behind (a cancel or a rejection settles them in the
    // database without an event of their own).
    if (status !== "completed") {
      for (const card of this.panel.querySelectorAll("[data-step]")) {
        if (UNSETTLED.has(card.dataset.status)) this.applyToCard(card, { status: "cancelled" }, true);
      }
    }
    for (const layer of this.panel.querySelectorAll("[data-layer]")) {
      const now = layer.dataset.status;
      if (now === "waiting") this.setLayer(layer.dataset.layer, "not_run");
      else if (now === "running" || now === "awaiting_approval") this.setLayer(layer.dataset.layer, status);
    }
    for (const empty of this.panel.querySelectorAll("[data-layer-empty]")) {
      empty.textContent = "No agent ran in this layer.";
    }
  }

  setStatus(status) {
    this.panel.dataset.status = status;
    setBadge(this.panel.querySelector("[data-execution-status]"), status);
    const approval = this.panel.querySelector("[data-approval]");
    if (approval) approval.hidden = status !== "awaiting_approval";
    const cancel = this.panel.querySelector("[data-cancel-form]");
    if (cancel) cancel.hidden = !(this.canCancel && CANCELLABLE.has(status));
  }

  layerOf(name) {
    return [...this.panel.querySelectorAll("[data-layer]")].find((l) => l.dataset.layer === name);
  }

  setLayer(name, status) {
    const layer = this.layerOf(name);
    if (!layer) return;
    layer.dataset.status = status;
    setBadge(layer.querySelector("[data-layer-badge]"), status);
  }

  cardFor(m) {
    const id = String(m.stepId);
    const existing = [...this.panel.querySelectorAll("[data-step]")].find((c) => c.dataset.stepId === id);
    if (existing) return existing;
    const layer = this.layerOf(m.layer);
    const template = this.panel.querySelector("template[data-step-template]");
    if (!layer || !template) return null;
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.stepId = id;
    card.dataset.agentId = m.agentId ?? "";
    card.querySelector("[data-step-name]").textContent = m.agentName || `Agent ${m.agentId ?? ""}`;
    layer.querySelector("[data-layer-steps]").append(card);
    const empty = layer.querySelector("[data-layer-empty]");
    if (empty) empty.hidden = true;
    if (layer.dataset.status === "waiting") this.setLayer(m.layer, "running");
    return card;
  }

  updateStep(m, changes) {
    const card = this.cardFor(m);
    if (card) this.applyToCard(card, changes, false);
  }

  applyToCard(card, changes, force) {
    const attemptHolder = card.querySelector("[data-step-attempt]");
    const attempt = Number(attemptHolder?.textContent) || 1;
    const next = changes.attempt ?? attempt;
    if (!force) {
      if (next < attempt) return;
      if (next === attempt && changes.status && (RANK[changes.status] ?? 0) < (RANK[card.dataset.status] ?? 0)) return;
    }
    if (changes.status) {
      card.dataset.status = changes.status;
      card.className = `step-card status-${cssStatus(changes.status)}`;
      setBadge(card.querySelector("[data-step-badge]"), changes.status);
    }
    if (changes.attempt !== undefined && attemptHolder) attemptHolder.textContent = String(changes.attempt);
    if (changes.durationMs !== undefined) {
      card.querySelector("[data-step-duration]").textContent = formatDuration(changes.durationMs);
    }
    if (changes.output !== undefined) card.querySelector("[data-step-output]").textContent = changes.output;
    if (changes.error !== undefined) card.querySelector("[data-step-error]").textContent = changes.error || "";
    if (changes.decision !== undefined) card.querySelector("[data-step-decision]").textContent = changes.decision;
  }

  renderApprovalSteps(steps) {
    const list = this.panel.querySelector("[data-approval-steps]");
    if (!list) return;
    list.replaceChildren(...steps.map((step) => {
      const item = document.createElement("li");
      const name = document.createElement("strong");
      name.textContent = step.agentName;
      const preview = document.createElement("span");
      preview.className = "muted";
      preview.textContent = step.outputPreview || "no output";
      item.append(name, ` (${step.layer}) proposes: `, preview);
      return item;
    }));
  }

  renderPlan(plan) {
    const section = this.panel.querySelector("[data-plan]");
    const body = section?.querySelector("[data-plan-body]");
    if (!body) return;
    const facts = document.createElement("dl");
    facts.className = "facts";
    const fact = (term, value) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      facts.append(dt, dd);
    };
    fact("Intent", plan.intent || "none decided");
    if (plan.confidence !== null && plan.confidence !== undefined) fact("Confidence", `${Math.round(plan.confidence * 100)}%`);
    if (plan.decidedBy) fact("Decided by", plan.decidedBy.name || "");
    const nodes = [facts];
    const layers = Object.entries(plan.layers || {});
    if (layers.length) {
      const list = document.createElement("ul");
      list.className = "plan-layers";
      for (const [name, part] of layers) {
        const item = document.createElement("li");
        const strong = document.createElement("strong");
        strong.textContent = name;
        const runs = (part.agents || []).map((a) => a.name).join(", ");
        item.append(strong, `: ${runs ? `runs ${runs}` : "runs no agent"}`);
        const out = part.excluded || [];
        if (out.length) {
          item.append("; leaves out ");
          out.forEach((a, index) => {
            const reason = document.createElement("span");
            reason.className = "muted";
            reason.textContent = `(${a.reason || ""})`;
            item.append(`${a.name} `, reason, index < out.length - 1 ? ", " : "");
          });
        }
        item.append(".");
        list.append(item);
      }
      nodes.push(list);
    }
    body.replaceChildren(...nodes);
    section.hidden = false;
  }

  // --- approve, reject, cancel: the JSON API, then the events tell the rest ---------------

  async submitAction(event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.executionAction) return;
    event.preventDefault();
    const verb = event.submitter?.dataset.verb || form.dataset.executionAction;
    const comment = form.querySelector("textarea[name=comment]")?.value.trim() || null;
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => b.setAttribute("aria-busy", "true"));
    try {
      const response = await fetch(`/api/agent-executions/${encodeURIComponent(this.id)}/${verb}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
        body: verb === "cancel" ? undefined : JSON.stringify({ comment }),
        credentials: "same-origin",
      });
      if (!response.ok) {
        const problem = await response.json().catch(() => null);
        toast(problem?.detail || `The server answered ${response.status}.`, "danger");
        return;
      }
      toast(DONE_MESSAGES[verb] || "Done", "success");
      const textarea = form.querySelector("textarea[name=comment]");
      if (textarea) textarea.value = "";
      // What changed arrives as events (replayed after a reconnect): the answer's status
      // may already be older than what they showed, so it is not applied here.
    } catch (error) {
      toast(`Could not reach the server: ${error.message}. Nothing was changed.`, "danger");
    } finally {
      buttons.forEach((b) => b.removeAttribute("aria-busy"));
    }
  }
}

const views = new Set();

/** Follow the execution shown in `panel` (once per panel); returns its view. */
export function attach(panel) {
  if (!panel.liveView) {
    panel.liveView = new LiveView(panel);
    views.add(panel.liveView);
    panel.liveView.start();
  }
  return panel.liveView;
}

/** Stop following `panel` (its dialog closed). */
export function detach(panel) {
  const view = panel?.liveView;
  if (!view) return;
  view.stop();
  views.delete(view);
  delete panel.liveView;
}

function attachAll(root = document) {
  for (const panel of root.querySelectorAll("[data-execution-panel]")) attach(panel);
}

attachAll();
// An in-place form submission (app.js) replaced <main>: stop following what it removed,
// follow the panel it brought.
document.addEventListener("page:swapped", (event) => {
  for (const view of [...views]) if (!view.panel.isConnected) detach(view.panel);
  attachAll(event.detail?.main || document);
});

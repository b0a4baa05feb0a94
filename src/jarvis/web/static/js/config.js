// Config Registry, "Set a value" form:
// - show only the target the chosen scope needs (persona, agent or workflow);
// - when the scope changes (global, or a persona), start the value fields from the value in
//   effect there, as long as the viewer has not edited them yet.
// Without this module every target field is shown, the fields start from the value in
// effect for the scope chosen under "Effective value", and the server does the rest.

const forms = (root = document) => root.querySelectorAll("form[data-set-value]");

function syncTargets(form) {
  const select = form.querySelector("[data-scope-select]");
  if (!select) return;
  for (const target of form.querySelectorAll("[data-scope-target]")) {
    target.hidden = target.dataset.scopeTarget !== select.value;
  }
}

function scopeKey(form) {
  const level = form.querySelector("[data-scope-select]")?.value;
  if (level === "global") return "global";
  if (level === "persona") {
    const persona = form.querySelector('[name="scope.persona"]')?.value;
    return persona ? `persona:${persona}` : null;
  }
  return null;
}

function prefill(form) {
  if (form.dataset.dirty === "true") return;
  let values;
  try {
    values = JSON.parse(form.dataset.prefill || "{}")[scopeKey(form)];
  } catch {
    return;
  }
  if (!values) return;
  for (const [name, value] of Object.entries(values)) {
    for (const control of form.querySelectorAll(`[name="${CSS.escape(name)}"]`)) {
      if (control.type === "checkbox") {
        control.checked = Array.isArray(value) ? value.includes(control.value) : Boolean(value);
      } else {
        control.value = value;
      }
    }
  }
}

document.addEventListener("input", (event) => {
  const form = event.target.closest?.("form[data-set-value]");
  if (form && event.target.name?.startsWith("value")) form.dataset.dirty = "true";
});

document.addEventListener("change", (event) => {
  const form = event.target.closest?.("form[data-set-value]");
  if (!form || !["scope", "scope.persona"].includes(event.target.name)) return;
  syncTargets(form);
  prefill(form);
});

// In-place form submission swaps <main>: set the new form up too.
const setUp = () => forms().forEach(syncTargets);
document.addEventListener("page:swapped", setUp);
setUp();

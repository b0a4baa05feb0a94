// Agent form: choosing another kind swaps in that kind's settings without a reload.
// Without JavaScript the "Load fields" button does the same with a round trip.
// Not importing app.js: base.html loads it under a versioned URL, and a second URL would
// run it twice (every in-place form would then be posted twice).

function toast(message, kind = "info") {
  const region = document.querySelector("[data-toasts]");
  if (!region) return;
  const item = document.createElement("div");
  item.className = `toast ${kind}`;
  item.textContent = message;
  region.append(item);
  setTimeout(() => item.remove(), 5000);
}

async function loadKind(form, select) {
  const region = form.querySelector("[data-kind-fields]");
  if (!region) return;
  const url = new URL(form.dataset.kindUrl, window.location.href);
  url.searchParams.set("kind", select.value);
  region.setAttribute("aria-busy", "true");
  try {
    const response = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.querySelector("[data-kind-fields]");
    if (!fresh) throw new Error("the answer had no settings");
    region.replaceWith(fresh);
    toast(`Showing the settings of the ${select.value} kind.`);
  } catch (error) {
    region.removeAttribute("aria-busy");
    toast(`Could not load the settings of the ${select.value} kind (${error.message}); use "Load fields".`, "danger");
    form.querySelector("[data-load-kind]")?.removeAttribute("hidden");
  }
}

function enhance(root) {
  for (const form of root.querySelectorAll("form[data-agent-form]")) {
    if (form.dataset.kindEnhanced) continue;
    form.dataset.kindEnhanced = "1";
    form.querySelector("[data-load-kind]")?.setAttribute("hidden", "");
    const select = form.querySelector("select[name='kind']");
    select?.addEventListener("change", () => loadKind(form, select));
  }
}

enhance(document);
// In-place submissions (app.js) replace <main>: enhance the new form too.
document.addEventListener("page:swapped", (event) => {
  enhance(event.detail.main);
  // A refused edit (someone else saved first) explains itself at the top: go there.
  const conflict = event.detail.main.querySelector("#edit-conflict");
  if (conflict && !event.detail.main.querySelector("[aria-invalid='true']")) {
    conflict.focus();
    conflict.scrollIntoView({ block: "center" });
  }
});

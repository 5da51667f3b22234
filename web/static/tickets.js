// Ticket form: three-level consultation type pickers that follow each other, and a customer picker
// backed by /api/customers. Without JavaScript the form still works (all types listed, customer by id).
"use strict";
(function () {
  const form = document.getElementById("ticket-form");
  if (!form) return;

  // ---- consultation types: a level's options are the children of the level above
  const pickers = [1, 2, 3].map((l) => form.querySelector(`select[data-type-level="${l}"]`));
  function filter(level) {
    const parent = pickers[level - 2];
    const select = pickers[level - 1];
    if (!parent || !select) return;
    const parentId = parent.value;
    for (const option of select.options) {
      if (!option.value) continue;
      const fits = parentId !== "" && option.dataset.parent === parentId;
      option.hidden = !fits;
      option.disabled = !fits;
      if (!fits && option.selected) select.value = "";
    }
    filter(level + 1);
  }
  pickers.forEach((select, i) => select && select.addEventListener("change", () => filter(i + 2)));
  filter(2);

  // ---- a button that needs confirming (폐기): app.js confirms whole forms, this bar has one form for all buttons
  form.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-confirm]");
    if (!button || button.dataset.confirmed) return;
    event.preventDefault();
    const ok = window.contactd ? await window.contactd.confirmDialog(button.dataset.confirm)
      : window.confirm(button.dataset.confirm);
    if (ok) {
      button.dataset.confirmed = "1";
      form.requestSubmit(button);
    }
  });

  // ---- customer picker
  const search = document.getElementById("customer-search");
  const results = document.getElementById("customer-results");
  const hidden = document.getElementById("customer-id");
  const label = document.getElementById("customer-name");
  if (!search || !results || !hidden || !label) return;
  let timer = null;
  let seq = 0;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(lookup, 250);
  });
  async function lookup() {
    const q = search.value.trim();
    const mine = ++seq;
    results.replaceChildren();
    if (q.length < 2) return;
    try {
      const response = await fetch(`/api/customers?limit=10&q=${encodeURIComponent(q)}`, {credentials: "same-origin"});
      if (!response.ok || mine !== seq) return;
      const data = await response.json();
      for (const c of data.customers) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "pick";
        button.textContent = `${c.name || "-"} ${c.mobile_display || c.phone_display || ""}`;
        button.addEventListener("click", () => {
          hidden.value = String(c.id);
          const link = document.createElement("a");
          link.href = c.url || `/customers/${c.id}`;
          link.textContent = `${c.name || "-"} ${c.mobile_display || c.phone_display || ""}`;
          label.replaceChildren(link);
          results.replaceChildren();
          search.value = "";
        });
        results.append(button);
      }
    } catch (err) {
      // The search is a convenience: a network error leaves the form as it was.
    }
  }
})();

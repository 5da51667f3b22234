// Shared panel behaviour: CSRF-carrying JSON calls, click-to-call on any shown number, confirm dialogs, toasts.
"use strict";
(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  const strings = () => { try { return JSON.parse(document.getElementById("i18n").textContent); } catch (e) { return {}; } };

  function toast(text, isError) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = text;
    el.className = isError ? "error" : "ok";
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
  }

  async function api(path, body) {
    const response = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok || data.error) { toast(data.error || response.statusText, true); return null; }
    return data;
  }

  function confirmDialog(text) {
    const dialog = document.getElementById("confirm-dialog");
    if (!dialog || !dialog.showModal) return Promise.resolve(window.confirm(text));
    document.getElementById("confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
  }

  async function dial(number) {
    const s = strings();
    if (!(await confirmDialog((s.dial_confirm || "{number}").replace("{number}", number)))) return;
    if (await api("/api/calls/dial", { number })) toast(s.done || "OK");
  }

  document.addEventListener("click", (event) => {
    const tel = event.target.closest("a.tel[data-tel]");
    if (tel) { event.preventDefault(); dial(tel.dataset.tel); }
  });
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.dataset.confirm && !form.dataset.confirmed) {
      event.preventDefault();
      if (await confirmDialog(form.dataset.confirm)) { form.dataset.confirmed = "1"; form.submit(); }
    }
  });
  document.addEventListener("change", (event) => {
    if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
  });

  // Main menu drop-downs: one open at a time; a click elsewhere or Esc closes them (Esc hands focus back).
  // On click (Enter/Space on a summary click too), not on "toggle", which fires later, after the new one opened.
  const menuGroups = () => document.querySelectorAll("nav.menu details.nav-group");
  document.addEventListener("click", (event) => {
    const inside = event.target.closest("details.nav-group");
    for (const group of menuGroups()) if (group !== inside) group.open = false;
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const open = document.querySelector("nav.menu details.nav-group[open]");
    if (!open) return;
    open.open = false;
    open.querySelector("summary").focus();
  });

  window.contactd = { api, toast, confirmDialog, dial, csrf };
})();

// Customer upload: when a file is chosen, ask the server for its sheets and first rows to help map the columns.
"use strict";
(function () {
  const form = document.getElementById("import-form");
  if (!form) return;
  const fileInput = form.querySelector('input[type="file"]');
  const sheetSelect = document.getElementById("sheet");
  const table = document.getElementById("preview");
  let sheets = [];

  function showRows(name) {
    const sheet = sheets.find((s) => s.name === name) || sheets[0];
    table.replaceChildren();
    if (!sheet) { table.hidden = true; return; }
    const width = Math.max(0, ...sheet.rows.map((r) => r.length));
    const head = document.createElement("tr");
    head.append(document.createElement("th"));
    for (let i = 0; i < width; i++) { const th = document.createElement("th"); th.textContent = String.fromCharCode(65 + i); head.append(th); }
    table.append(head);
    sheet.rows.forEach((row, index) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th"); th.textContent = index + 1; tr.append(th);
      for (let i = 0; i < width; i++) { const td = document.createElement("td"); td.textContent = row[i] || ""; tr.append(td); }
      table.append(tr);
    });
    table.hidden = false;
  }

  fileInput.addEventListener("change", async () => {
    if (!fileInput.files.length) return;
    const body = new FormData();
    body.append("file", fileInput.files[0]);
    const response = await fetch("/api/customers/import/preview", { method: "POST", body, credentials: "same-origin", headers: { "X-CSRF-Token": window.contactd.csrf() } });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) { window.contactd.toast(data.error || response.statusText, true); return; }
    sheets = data.sheets || [];
    sheetSelect.replaceChildren(...sheets.map((s) => { const o = document.createElement("option"); o.value = s.name; o.textContent = s.name; return o; }));
    showRows(sheetSelect.value);
  });
  sheetSelect.addEventListener("change", () => showRows(sheetSelect.value));
})();

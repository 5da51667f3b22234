// SMS pages: compose (recipients, live byte counter, templates, send/schedule), templates admin, scheduled list,
// history details. The byte counter mirrors crm/sms_text.text_bytes; the server measures again on send.
"use strict";
(function () {
  const SMS_MAX = 80;
  const LMS_MAX = 2000;
  const NAME = "{고객명}";
  const TODAY = "{오늘날짜}";
  const $ = (id) => document.getElementById(id);
  const data = (() => { try { return JSON.parse($("sms-data").textContent); } catch (e) { return {}; } })();
  const S = data.strings || {};
  const fmt = (text, params) => String(text || "").replace(/\{(\w+)\}/g, (m, k) => (k in params ? params[k] : m));
  const ui = () => window.contactd;

  // EUC-KR/CP949 sizes: ASCII is 1 byte, Hangul and every other character 2 (what carriers bill); CRLF counts as LF.
  function textBytes(text) {
    let total = 0;
    for (const ch of String(text).replace(/\r\n/g, "\n")) total += ch.codePointAt(0) < 0x80 ? 1 : 2;
    return total;
  }
  function seoulDate(date) {
    return new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Seoul" }).format(date || new Date());
  }
  function fill(body, name, today) {
    return body.split(NAME).join(name || "고객").split(TODAY).join(today);
  }
  function kindOf(bytes, hasImage) {
    if (hasImage) return "MMS";
    return bytes <= SMS_MAX ? "SMS" : "LMS";
  }

  async function send(method, path, body, isForm) {
    const headers = { "X-CSRF-Token": ui().csrf() };
    if (!isForm) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, credentials: "same-origin", headers,
      body: isForm ? body : JSON.stringify(body || {}) });
    let json = {};
    try { json = await response.json(); } catch (e) { /* not JSON */ }
    return { ok: response.ok, status: response.status, data: json };
  }

  function insertAt(textarea, text) {
    const start = textarea.selectionStart ?? textarea.value.length;
    const end = textarea.selectionEnd ?? textarea.value.length;
    textarea.value = textarea.value.slice(0, start) + text + textarea.value.slice(end);
    textarea.selectionStart = textarea.selectionEnd = start + text.length;
    textarea.focus();
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (className) td.className = className;
    return td;
  }
  function display(number) {
    const d = String(number || "");
    if (d.length === 11) return `${d.slice(0, 3)}-${d.slice(3, 7)}-${d.slice(7)}`;
    if (d.length === 10) return `${d.slice(0, 3)}-${d.slice(3, 6)}-${d.slice(6)}`;
    return d;
  }

  // ---- compose ---------------------------------------------------------------------------------------------------
  function compose(root) {
    const limits = data.limits || {};
    const recipients = [];
    let image = null; // data: URL
    const body = $("sms-body");
    const subject = $("sms-subject");

    function report(el, added, merged, invalid) {
      el.replaceChildren();
      const p = document.createElement("p");
      p.textContent = fmt(S.added, { count: added }) + (merged ? " " + fmt(S.merged, { count: merged }) : "");
      el.append(p);
      if (invalid && invalid.length) {
        const head = document.createElement("p");
        head.className = "error";
        head.textContent = fmt(S.invalid, { count: invalid.length });
        const list = document.createElement("ul");
        list.className = "sms-invalid";
        for (const item of invalid.slice(0, 50)) {
          const li = document.createElement("li");
          li.textContent = `${fmt(S.line, { line: item.line })}: ${item.text}`;
          list.append(li);
        }
        el.append(head, list);
      }
    }

    // Returns how many were merged into numbers already on the list.
    function addAll(items) {
      let merged = 0;
      for (const item of items) {
        const number = String(item.number || "").replace(/\D/g, "");
        if (!number) continue;
        const existing = recipients.find((r) => r.number === number);
        if (existing) {
          merged += 1;
          if (!existing.name && item.name) existing.name = item.name;
          if (!existing.customer_id && item.customer_id) existing.customer_id = item.customer_id;
          continue;
        }
        recipients.push({ number, name: item.name || "", customer_id: item.customer_id || null, opt_out: !!item.opt_out });
      }
      renderList();
      return merged;
    }

    let checkTimer = null;
    function renderList() {
      const tbody = $("sms-list").tBodies[0];
      tbody.replaceChildren();
      recipients.forEach((r, index) => {
        const tr = document.createElement("tr");
        tr.dataset.number = r.number;
        const name = cell(r.name || "-");
        if (r.opt_out) {
          const badge = document.createElement("span");
          badge.className = "badge optout";
          badge.textContent = S.opt_out_badge;
          name.append(" ", badge);
        }
        const x = document.createElement("button");
        x.type = "button"; x.className = "small"; x.textContent = "✕"; x.title = S.remove;
        x.setAttribute("aria-label", `${S.remove} ${display(r.number)}`);
        x.addEventListener("click", () => { recipients.splice(index, 1); renderList(); });
        const tdx = document.createElement("td"); tdx.append(x);
        tr.append(name, cell(display(r.number)), tdx);
        tbody.append(tr);
      });
      $("sms-count").textContent = recipients.length;
      $("sms-empty").hidden = recipients.length > 0;
      update();
      clearTimeout(checkTimer);
      checkTimer = setTimeout(checkOptOut, 250);
    }

    async function checkOptOut() {
      const note = $("sms-optout");
      if (!recipients.length) { note.hidden = true; return; }
      const result = await send("POST", "/api/sms/recipients/check", { recipients });
      const count = result.ok ? result.data.opted_out : 0;
      note.textContent = fmt(S.optout, { count });
      note.hidden = !count;
    }

    function when() {
      const later = root.querySelector('input[name="sms-when"]:checked')?.value === "later";
      return later ? $("sms-at").value : "";
    }

    // The longest filled-in text decides the kind, exactly as the server does.
    function figures() {
      const at = when();
      const today = at ? at.slice(0, 10) : seoulDate();
      const names = recipients.length ? recipients.map((r) => r.name) : [""];
      let bytes = 0;
      for (const name of names) bytes = Math.max(bytes, textBytes(fill(body.value, name, today)));
      const kind = kindOf(bytes, !!image);
      return { bytes, kind, limit: kind === "SMS" ? SMS_MAX : LMS_MAX };
    }

    function update() {
      const f = figures();
      $("sms-bytes").textContent = f.bytes;
      $("sms-limit").textContent = f.limit;
      const kind = $("sms-kind");
      kind.textContent = f.kind;
      kind.className = `sms-kind ${f.kind.toLowerCase()}`;
      root.querySelector(".sms-counter").classList.toggle("over", f.bytes > LMS_MAX);
      $("sms-subject-label").hidden = f.kind === "SMS";
    }

    body.addEventListener("input", update);
    root.addEventListener("change", (event) => {
      if (event.target.name === "sms-when") {
        $("sms-at").disabled = !root.querySelector('input[name="sms-when"][value="later"]').checked;
        update();
      }
    });
    $("sms-at").addEventListener("input", update);
    root.querySelectorAll("button[data-insert]").forEach((b) => b.addEventListener("click", () => insertAt(body, b.dataset.insert)));

    $("sms-template").addEventListener("change", (event) => {
      const template = (data.templates || []).find((x) => String(x.id) === event.target.value);
      if (!template) return;
      body.value = template.body;
      subject.value = template.subject || "";
      update();
    });

    // direct input
    $("sms-direct-add").addEventListener("click", () => {
      const raw = $("sms-direct-number").value.trim();
      const digits = raw.replace(/[\s\-().]/g, "");
      if (!/^01[016789]\d{7,8}$/.test(digits)) { ui().toast(fmt(S.bad_number, { number: raw }), true); return; }
      addAll([{ number: digits, name: $("sms-direct-name").value.trim() }]);
      $("sms-direct-number").value = ""; $("sms-direct-name").value = "";
    });

    // customer search (the customers API)
    async function search() {
      const q = $("sms-search-q").value.trim();
      const response = await fetch(`/api/customers?limit=100&q=${encodeURIComponent(q)}`, { credentials: "same-origin" });
      const json = await response.json().catch(() => ({}));
      const table = $("sms-search-results");
      const tbody = table.tBodies[0];
      tbody.replaceChildren();
      const found = json.customers || [];
      if (!found.length) ui().toast(S.none_found);
      for (const c of found) {
        const tr = document.createElement("tr");
        const box = document.createElement("input");
        box.type = "checkbox"; box.className = "sms-pick";
        const mobile = /^01[016789]\d{7,8}$/.test(c.mobile || "");
        box.disabled = !mobile;
        Object.assign(box.dataset, { number: c.mobile || "", name: c.name || "", customer: c.id, optout: c.sms_opt_out ? "1" : "" });
        const td = document.createElement("td"); td.append(box);
        const flags = cell(c.sms_opt_out ? S.opt_out_badge : (mobile ? "" : S.no_mobile), "muted small");
        tr.append(td, cell(c.name || "-"), cell(c.mobile_display || c.phone_display || ""), flags);
        tbody.append(tr);
      }
      table.hidden = !found.length;
    }
    $("sms-search-go").addEventListener("click", search);
    $("sms-search-q").addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); search(); } });
    $("sms-search-all").addEventListener("change", (event) => {
      root.querySelectorAll("input.sms-pick:not(:disabled)").forEach((box) => { box.checked = event.target.checked; });
    });
    $("sms-search-add").addEventListener("click", () => {
      const picked = [...root.querySelectorAll("input.sms-pick:checked")].map((box) => ({
        number: box.dataset.number, name: box.dataset.name, customer_id: Number(box.dataset.customer), opt_out: !!box.dataset.optout }));
      addAll(picked);
      root.querySelectorAll("input.sms-pick:checked").forEach((box) => { box.checked = false; });
      ui().toast(fmt(S.added, { count: picked.length }));
    });

    // bulk paste: the server parses, lists invalid lines and merges duplicates
    $("sms-paste-add").addEventListener("click", async () => {
      const result = await send("POST", "/api/sms/recipients/paste", { text: $("sms-paste").value });
      if (!result.ok) { ui().toast(result.data.error || result.status, true); return; }
      const before = recipients.length;
      const mergedHere = addAll(result.data.recipients);
      report($("sms-paste-report"), recipients.length - before, result.data.duplicates + mergedHere, result.data.invalid);
      if (!result.data.invalid.length) $("sms-paste").value = "";
    });

    // Excel: preview the sheets, then read the chosen columns
    const fileInput = $("sms-excel-file");
    fileInput.addEventListener("change", async () => {
      if (!fileInput.files.length) return;
      const form = new FormData();
      form.append("file", fileInput.files[0]);
      const result = await send("POST", "/api/sms/recipients/excel/preview", form, true);
      if (!result.ok) { ui().toast(result.data.error || result.status, true); return; }
      const sheets = result.data.sheets || [];
      const select = $("sms-excel-sheet");
      select.replaceChildren(...sheets.map((s) => { const o = document.createElement("option"); o.value = s.name; o.textContent = s.name; return o; }));
      const showRows = () => {
        const sheet = sheets.find((s) => s.name === select.value) || sheets[0];
        const table = $("sms-excel-preview");
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
          for (let i = 0; i < width; i++) tr.append(cell(row[i] || ""));
          table.append(tr);
        });
        table.hidden = false;
      };
      select.onchange = showRows;
      showRows();
    });
    $("sms-excel-add").addEventListener("click", async () => {
      if (!fileInput.files.length) { ui().toast(S.sheet_first, true); return; }
      const form = new FormData();
      form.append("file", fileInput.files[0]);
      form.append("sheet", $("sms-excel-sheet").value || "");
      form.append("name_column", $("sms-excel-name").value);
      form.append("mobile_column", $("sms-excel-mobile").value);
      form.append("start_row", $("sms-excel-start").value || "1");
      const result = await send("POST", "/api/sms/recipients/excel", form, true);
      if (!result.ok) { ui().toast(result.data.error || result.status, true); return; }
      const before = recipients.length;
      const mergedHere = addAll(result.data.recipients);
      report($("sms-excel-report"), recipients.length - before, result.data.duplicates + mergedHere, result.data.invalid);
    });

    $("sms-clear-list").addEventListener("click", () => { recipients.splice(0); renderList(); });

    // image → MMS
    const imageInput = $("sms-image");
    imageInput.addEventListener("change", () => {
      const file = imageInput.files[0];
      if (!file) { image = null; update(); return; }
      if (!/\.jpe?g$/i.test(file.name) && file.type !== "image/jpeg") {
        ui().toast(S.image_type, true); imageInput.value = ""; return;
      }
      if (file.size > (limits.image_kb || 300) * 1024) {
        ui().toast(fmt(S.image_size, { kb: limits.image_kb }), true); imageInput.value = ""; return;
      }
      const reader = new FileReader();
      reader.onload = () => { image = reader.result; $("sms-image-clear").hidden = false; update(); };
      reader.readAsDataURL(file);
    });
    $("sms-image-clear").addEventListener("click", () => {
      image = null; imageInput.value = ""; $("sms-image-clear").hidden = true; update();
    });

    function resetMessage() {
      body.value = ""; subject.value = ""; image = null; imageInput.value = "";
      $("sms-image-clear").hidden = true;
      $("sms-template").value = "";
      root.querySelector('input[name="sms-when"][value="now"]').checked = true;
      $("sms-at").value = ""; $("sms-at").disabled = true;
      update();
    }
    $("sms-reset").addEventListener("click", async () => {
      if ((body.value || recipients.length) && !(await ui().confirmDialog(S.reset_confirm))) return;
      resetMessage();
      recipients.splice(0);
      $("sms-result").replaceChildren();
      for (const id of ["sms-paste-report", "sms-excel-report"]) $(id).replaceChildren();
      renderList();
    });

    $("sms-send").addEventListener("click", async () => {
      if (!recipients.length) { ui().toast(S.no_recipients, true); return; }
      const later = root.querySelector('input[name="sms-when"]:checked').value === "later";
      if (later && !$("sms-at").value) { ui().toast(S.need_time, true); return; }
      const f = figures();
      if (!(await ui().confirmDialog(fmt(S.confirm_send, { count: recipients.length, kind: f.kind })))) return;
      const payload = {
        recipients: recipients.map((r) => ({ number: r.number, name: r.name, customer_id: r.customer_id })),
        body: body.value, subject: f.kind === "SMS" ? "" : subject.value, image: image || "",
        scheduled_at: later ? $("sms-at").value : null,
      };
      const button = $("sms-send");
      button.disabled = true;
      try {
        const result = await send("POST", "/api/sms/send", payload);
        if (!result.ok) { ui().toast(result.data.error || result.status, true); return; }
        const m = result.data.message;
        const out = $("sms-result");
        out.replaceChildren();
        const p = document.createElement("p");
        p.className = "ok";
        p.textContent = later ? fmt(S.scheduled, { kind: m.kind, count: result.data.recipients, at: m.scheduled_local })
          : fmt(S.sent, { kind: m.kind, count: result.data.recipients });
        if (result.data.excluded_opt_out) p.textContent += " " + fmt(S.excluded, { count: result.data.excluded_opt_out });
        const link = document.createElement("a");
        link.href = later ? "/sms/scheduled" : "/sms/history";
        link.textContent = later ? S.scheduled_link : S.history_link;
        out.append(p, link);
        ui().toast(p.textContent);
        resetMessage();
      } finally {
        button.disabled = false;
      }
    });

    addAll(data.initial || []);
    update();
  }

  // ---- templates admin -------------------------------------------------------------------------------------------
  function templatesAdmin(root) {
    let folder = ""; // "" all | "none" | id
    const byId = (id) => (data.templates || []).find((x) => String(x.id) === String(id));
    const folderById = (id) => (data.folders || []).find((x) => String(x.id) === String(id));

    function selectFolder(value) {
      folder = value;
      root.querySelectorAll("#sms-folder-tree a").forEach((a) => a.classList.toggle("active", a.dataset.folder === value));
      root.querySelectorAll("#sms-template-list tbody tr").forEach((tr) => {
        tr.hidden = !(value === "" || tr.dataset.folder === value);
      });
      const real = value !== "" && value !== "none";
      const f = real ? folderById(value) : null;
      $("sms-folder-add-sub").disabled = !(f && f.parent_id == null);
      $("sms-folder-rename").disabled = !real;
      $("sms-folder-delete").disabled = !real;
      if (f) $("sms-folder-name").value = f.name;
      if (real && !$("sms-tpl-id").value) $("sms-tpl-folder").value = value;
    }
    root.querySelectorAll("#sms-folder-tree a").forEach((a) => a.addEventListener("click", (event) => {
      event.preventDefault(); selectFolder(a.dataset.folder);
    }));

    async function act(method, path, body) {
      const result = await send(method, path, body);
      if (!result.ok) { ui().toast(result.data.error || result.status, true); return null; }
      return result.data;
    }
    const name = () => $("sms-folder-name").value.trim();
    $("sms-folder-add-top").addEventListener("click", async () => {
      if (!name()) { ui().toast(S.need_name, true); return; }
      if (await act("POST", "/api/sms/folders", { name: name() })) location.reload();
    });
    $("sms-folder-add-sub").addEventListener("click", async () => {
      if (!name()) { ui().toast(S.need_name, true); return; }
      if (await act("POST", "/api/sms/folders", { name: name(), parent_id: Number(folder) })) location.reload();
    });
    $("sms-folder-rename").addEventListener("click", async () => {
      if (!name()) { ui().toast(S.need_name, true); return; }
      if (await act("PUT", `/api/sms/folders/${folder}`, { name: name() })) location.reload();
    });
    $("sms-folder-delete").addEventListener("click", async () => {
      const f = folderById(folder);
      if (!f || !(await ui().confirmDialog(fmt(S.delete_folder, { name: f.name })))) return;
      if (await act("DELETE", `/api/sms/folders/${folder}`)) location.reload();
    });

    function edit(template) {
      $("sms-tpl-id").value = template ? template.id : "";
      $("sms-tpl-title").value = template ? template.title : "";
      $("sms-tpl-subject").value = template ? template.subject : "";
      $("sms-tpl-body").value = template ? template.body : "";
      $("sms-tpl-folder").value = template ? (template.folder_id ?? "") : (folder !== "" && folder !== "none" ? folder : "");
      $("sms-editor-title").textContent = template ? S.edit : S.new;
      $("sms-tpl-delete").disabled = !template;
      meter();
    }
    function meter() {
      const bytes = textBytes(fill($("sms-tpl-body").value, "", seoulDate()));
      $("sms-tpl-bytes").textContent = bytes;
      $("sms-tpl-kind").textContent = kindOf(bytes, false);
      $("sms-tpl-kind").className = `sms-kind ${kindOf(bytes, false).toLowerCase()}`;
    }
    $("sms-tpl-body").addEventListener("input", meter);
    root.querySelectorAll("button[data-insert]").forEach((b) => b.addEventListener("click", () => insertAt($(b.dataset.target), b.dataset.insert)));
    root.querySelectorAll("#sms-template-list tbody tr").forEach((tr) => tr.addEventListener("click", (event) => {
      event.preventDefault(); edit(byId(tr.dataset.template));
    }));
    $("sms-tpl-new").addEventListener("click", () => edit(null));
    $("sms-tpl-save").addEventListener("click", async () => {
      const id = $("sms-tpl-id").value;
      const folderValue = $("sms-tpl-folder").value;
      const body = { title: $("sms-tpl-title").value, subject: $("sms-tpl-subject").value, body: $("sms-tpl-body").value,
        folder_id: folderValue ? Number(folderValue) : null };
      if (await act(id ? "PUT" : "POST", id ? `/api/sms/templates/${id}` : "/api/sms/templates", body)) {
        ui().toast(S.saved);
        location.reload();
      }
    });
    $("sms-tpl-delete").addEventListener("click", async () => {
      const id = $("sms-tpl-id").value;
      if (!id || !(await ui().confirmDialog(S.delete_template))) return;
      if (await act("DELETE", `/api/sms/templates/${id}`)) location.reload();
    });
    meter();
  }

  // ---- scheduled list --------------------------------------------------------------------------------------------
  function scheduled(root) {
    const button = $("sms-cancel-selected");
    if (!button) return;
    const picks = () => [...root.querySelectorAll("input.sms-sched-pick:checked")];
    const sync = () => { button.disabled = !picks().length; };
    root.addEventListener("change", (event) => {
      if (event.target.id === "sms-sched-all") {
        root.querySelectorAll("input.sms-sched-pick:not(:disabled)").forEach((box) => { box.checked = event.target.checked; });
      }
      sync();
    });
    button.addEventListener("click", async () => {
      const ids = picks().map((box) => Number(box.value));
      if (!ids.length || !(await ui().confirmDialog(fmt(S.cancel_confirm, { count: ids.length })))) return;
      const result = await send("POST", "/api/sms/cancel", { ids });
      const cancelled = (result.data.cancelled || []).length;
      if (!result.ok) ui().toast(result.data.error || result.status, true);
      else ui().toast(fmt(S.cancelled, { count: cancelled }));
      if (cancelled) setTimeout(() => location.reload(), result.ok ? 300 : 1500);
    });
  }

  // ---- history: per-recipient details ----------------------------------------------------------------------------
  function history(root) {
    root.addEventListener("click", async (event) => {
      const button = event.target.closest("button.sms-detail");
      if (!button) return;
      const row = button.closest("tr");
      const open = row.nextElementSibling?.classList.contains("sms-recipients") ? row.nextElementSibling : null;
      if (open) { open.remove(); button.setAttribute("aria-expanded", "false"); return; }
      const response = await fetch(`/api/sms/messages/${button.dataset.id}/recipients`, { credentials: "same-origin" });
      const json = await response.json().catch(() => ({}));
      const detail = document.createElement("tr");
      detail.className = "sms-recipients";
      const td = document.createElement("td");
      td.colSpan = row.children.length;
      const table = document.createElement("table");
      table.className = "list compact";
      const head = document.createElement("tr");
      for (const key of ["name", "number", "body", "status", "sent_at", "error"]) {
        const th = document.createElement("th"); th.textContent = S[key]; head.append(th);
      }
      table.append(head);
      for (const r of json.recipients || []) {
        const tr = document.createElement("tr");
        tr.append(cell(r.name || "-"), cell(display(r.number)), cell(r.body, "pre"),
          cell(r.status_label, `sms-status ${r.status}`), cell(r.sent_local), cell(r.error, "error"));
        table.append(tr);
      }
      td.append(table);
      detail.append(td);
      row.after(detail);
      button.setAttribute("aria-expanded", "true");
    });
  }

  const pages = { "sms-compose": compose, "sms-templates": templatesAdmin, "sms-scheduled": scheduled, "sms-history": history };
  for (const [id, init] of Object.entries(pages)) {
    const root = $(id);
    if (root) init(root);
  }
  window.contactdSms = { textBytes, fill, kindOf };
})();

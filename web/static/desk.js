// The agent desk: listens to /api/events (server-sent events) and shows the screen-pop without reloading.
"use strict";
(function () {
  const desk = document.getElementById("desk");
  if (!desk) return;
  const S = JSON.parse(document.getElementById("desk-i18n").textContent);
  const pops = document.getElementById("pops");
  const empty = document.getElementById("pop-empty");
  const log = document.getElementById("event-log");
  const state = document.getElementById("stream-state");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value; else if (key.startsWith("data-")) node.setAttribute(key, value); else node[key] = value;
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  const SECTION_PAGES = { tickets: "/tickets/", orders: "/orders/" };
  const telLink = (digits, shown) => el("a", { href: "#", class: "tel", "data-tel": digits, title: S.dial }, shown || digits);

  function logLine(text) {
    const time = new Date().toLocaleTimeString();
    log.prepend(el("li", {}, `${time} ${text}`));
    while (log.children.length > 50) log.lastChild.remove();
  }

  function renderPop(p) {
    const card = el("article", { class: "card pop" + (p.customer && p.customer.caution ? " caution" : "") + (p.customer && p.customer.vip ? " vip" : ""), "data-linkedid": p.linkedid || "" });
    const head = el("header", {}, el("h2", {}, S.title), el("button", { class: "link close", type: "button", textContent: S.close }));
    head.querySelector(".close").addEventListener("click", () => { card.remove(); if (!pops.children.length) empty.hidden = false; });
    card.append(head);
    const facts = el("dl", { class: "facts" });
    facts.append(el("dt", {}, S.number), el("dd", { class: "pop-number" }, p.number ? telLink(p.number, p.number_display) : "-"));
    if (p.caller_name) facts.append(el("dt", {}, "CID"), el("dd", {}, p.caller_name));
    if (p.ivr_choice) facts.append(el("dt", {}, S.ivr), el("dd", { class: "pop-ivr" }, `${p.ivr_choice} ${p.ivr_label}`));
    if (p.queue) facts.append(el("dt", {}, S.queue), el("dd", {}, p.queue));
    card.append(facts);
    const c = p.customer;
    const actions = el("div", { class: "row pop-actions" });
    if (c) {
      const name = el("h3", { class: "pop-customer" }, el("a", { href: c.url }, c.name || "-"));
      if (c.vip) name.append(" ", el("span", { class: "badge vip" }, S.vip));
      if (c.caution) name.append(" ", el("span", { class: "badge caution" }, S.caution));
      if (c.sms_opt_out) name.append(" ", el("span", { class: "badge optout" }, S.sms_opt_out));
      card.append(name);
      const info = el("dl", { class: "facts" });
      if (c.mobile) info.append(el("dt", {}, S.mobile), el("dd", {}, telLink(c.mobile, c.mobile_display)));
      if (c.phone) info.append(el("dt", {}, S.phone), el("dd", {}, telLink(c.phone, c.phone_display)));
      if (c.address) info.append(el("dt", {}, S.address), el("dd", {}, `${c.zip} ${c.address}`));
      if (c.memo) info.append(el("dt", {}, S.memo), el("dd", { class: "pre" }, c.memo));
      card.append(info);
      if (p.other_matches) card.append(el("p", { class: "muted" }, S.other_matches.replace("{count}", p.other_matches)));
      actions.append(el("a", { class: "button pop-open", href: c.url }, S.open_customer));
    } else {
      card.append(el("p", { class: "muted" }, S.unknown));
      actions.append(el("a", { class: "button new-customer", href: p.new_customer_url }, S.new_customer));
    }
    // One click from a ringing call to a ticket for it, or to an SMS to the caller.
    if (p.ticket_url) actions.append(el("a", { class: "button primary pop-ticket", href: p.ticket_url, title: S.new_ticket_title }, S.new_ticket));
    if (p.sms_url) actions.append(el("a", { class: "button pop-sms", href: p.sms_url, title: S.sms_title }, S.sms));
    card.append(actions);
    if (p.recent_calls && p.recent_calls.length) {
      const list = el("ul", { class: "recent" });
      for (const call of p.recent_calls) list.append(el("li", {}, `${call.started_at} · ${S["direction." + call.direction] || call.direction} · ${call.agent_extension} · ${call.billsec}s`));
      card.append(el("h4", {}, S.recent_calls), list);
    }
    for (const [name, items] of Object.entries(p.sections || {})) {
      if (!items || !items.length) continue;
      const list = el("ul", { class: "section", "data-section": name });
      for (const item of items) {
        const text = Object.values(item).filter((v) => v !== null && v !== "" && typeof v !== "object").slice(1).join(" · ");
        // Known sections link each line to its page (the open ticket, the order) so the agent need not search.
        const page = SECTION_PAGES[name] && item.id ? SECTION_PAGES[name] + item.id : "";
        list.append(el("li", {}, page ? el("a", { href: page }, text) : text));
      }
      card.append(el("h4", {}, S["section." + name] || name), list);
    }
    card.append(el("p", { class: "status muted" }));
    return card;
  }

  function onRinging(p) {
    empty.hidden = true;
    const existing = p.linkedid && pops.querySelector(`[data-linkedid="${CSS.escape(p.linkedid)}"]`);
    const card = renderPop(p);
    if (existing) existing.replaceWith(card); else pops.prepend(card);
    logLine(`${S.title}: ${p.number_display || p.number}${p.customer ? " " + p.customer.name : ""}`);
    window.contactdLastPop = { at: Date.now(), pushedAt: p.pushed_at, linkedid: p.linkedid };
  }

  function onCallEvent(kind, p) {
    const card = p.linkedid && pops.querySelector(`[data-linkedid="${CSS.escape(p.linkedid)}"]`);
    if (card) {
      card.querySelector(".status").textContent = S[kind] || kind;
      card.classList.toggle("ended", kind === "ended");
    }
    logLine(`${S[kind] || kind} ${p.extension || p.to_extension || ""}`);
  }

  let source = null;
  function connect() {
    source = new EventSource("/api/events" + (desk.dataset.watchAll === "1" ? "?all=1" : ""));
    source.onopen = () => { state.textContent = state.dataset.on; state.className = "state on"; };
    source.onerror = () => { state.textContent = state.dataset.off; state.className = "state off"; };
    source.addEventListener("ringing", (e) => onRinging(JSON.parse(e.data)));
    for (const kind of ["answered", "ended", "transferred"]) source.addEventListener(kind, (e) => onCallEvent(kind, JSON.parse(e.data)));
    source.addEventListener("callback.captured", () => logLine(S.callback));
  }
  connect();

  const target = () => document.getElementById("transfer-target")?.value || "";
  const actions = {
    dial: () => { const n = document.getElementById("dial-number").value.trim(); if (n) window.contactd.dial(n); return null; },
    hangup: () => ["/api/calls/hangup", {}], hold: () => ["/api/calls/hold", {}], unhold: () => ["/api/calls/unhold", {}],
    blind: () => ["/api/calls/transfer", { target: target(), kind: "blind" }],
    attended: () => ["/api/calls/transfer", { target: target(), kind: "attended" }],
    complete: () => ["/api/calls/transfer/complete", {}], cancel_transfer: () => ["/api/calls/transfer/cancel", {}],
    pickup: () => ["/api/calls/pickup", { extension: target() }],
  };
  desk.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-call], button[data-harass]");
    if (!button) return;
    if (button.dataset.harass) {
      if (await window.contactd.confirmDialog(button.dataset.confirm)) {
        if (await window.contactd.api("/api/calls/harassment", { kind: button.dataset.harass })) window.contactd.toast(JSON.parse(document.getElementById("i18n").textContent).done);
      }
      return;
    }
    const kind = button.dataset.call;
    if (kind === "away" || kind === "online") {
      const on = button.getAttribute("aria-pressed") !== "true";
      const body = kind === "away" ? { away: on } : { online: !on };
      if (await window.contactd.api(`/api/calls/${kind}`, body)) {
        button.setAttribute("aria-pressed", on ? "true" : "false");
        button.textContent = on ? button.dataset.on : button.dataset.off;
      }
      return;
    }
    const action = actions[kind] && actions[kind]();
    if (action && (await window.contactd.api(action[0], action[1]))) window.contactd.toast(JSON.parse(document.getElementById("i18n").textContent).done);
  });
})();

// Weft's browser UI: the few things that happen without a reload. Everything works without
// this file too (pages are complete HTML); it adds live updates, countdowns, a JSON check
// and a confirmation before canceling a run. No inline script: the page's CSP forbids it.
"use strict";

function span(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return Math.floor(s / 3600) + " h" + (m ? " " + m + " min" : "");
  }
  const h = Math.floor((s % 86400) / 3600);
  return Math.floor(s / 86400) + " d" + (h ? " " + h + " h" : "");
}

// "in 2 h 5 min" (or "5 min ago" once past) on every expiry.
function countdowns() {
  for (const el of document.querySelectorAll("time[data-countdown]")) {
    const left = (Date.parse(el.getAttribute("datetime")) - Date.now()) / 1000;
    if (!Number.isNaN(left)) el.textContent = left >= 0 ? "in " + span(left) : span(-left) + " ago";
  }
}

// The inbox list, replaced whenever the server says it changed.
function liveInbox(url) {
  const source = new EventSource(url);
  source.addEventListener("open", () => { document.body.dataset.stream = "open"; });
  source.addEventListener("inbox", (event) => {
    const update = JSON.parse(event.data);
    const list = document.getElementById("inbox-items");
    // Server-rendered and escaped by the template engine.
    if (list) list.innerHTML = update.html;
    const count = document.getElementById("inbox-count");
    if (count) count.textContent = update.count;
    document.title = "Inbox (" + update.count + ") · Weft";
    countdowns();
  });
  source.addEventListener("signed-out", () => { source.close(); location.reload(); });
}

// A run's log lines as they are written; the page reloads when the run's state changes.
function liveRun(table) {
  const source = new EventSource(table.dataset.events);
  const body = table.tBodies[0];
  source.addEventListener("log", (event) => {
    for (const line of JSON.parse(event.data)) {
      const row = body.insertRow();
      row.className = "lvl-" + line.level;
      for (const text of [line.at, line.level, line.step || "", line.message]) {
        row.insertCell().textContent = text;
      }
    }
  });
  source.addEventListener("state", () => { source.close(); location.reload(); });
  source.addEventListener("signed-out", () => { source.close(); location.reload(); });
}

// JSON fields say whether what is typed is JSON (the server checks again).
function jsonChecks() {
  for (const area of document.querySelectorAll("textarea[data-json]")) {
    const hint = area.parentElement.querySelector(".json-check");
    const check = () => {
      if (!hint) return;
      if (area.value.trim() === "") { hint.textContent = ""; return; }
      try { JSON.parse(area.value); hint.textContent = "Valid JSON."; }
      catch (e) { hint.textContent = "Not valid JSON yet: " + e.message; }
    };
    area.addEventListener("input", check);
    check();
  }
}

function confirms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  countdowns();
  setInterval(countdowns, 30000);
  jsonChecks();
  confirms();
  const live = document.body.dataset.live;
  if (live) liveInbox(live);
  const log = document.querySelector("table.log[data-events]");
  if (log) liveRun(log);
});

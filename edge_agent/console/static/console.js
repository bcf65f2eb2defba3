// The alert list (live over Server-Sent Events, filtered) and the health board.
"use strict";

const FILTERS = ["site", "device", "camera", "rule", "severity", "verdict", "from", "to"];
let stream = null;
let healthTimer = null;

function filterQuery() {
  const form = document.getElementById("filters");
  const q = new URLSearchParams();
  for (const name of FILTERS) {
    let value = form.elements[name].value;
    if (!value) continue;
    if (name === "from" || name === "to") value = new Date(value + "Z").toISOString();
    q.set(name, value);
  }
  return q;
}

function alertRow(inc) {
  const what = (inc.label || inc.kind) + (inc.zone ? " in " + inc.zone : "");
  const verdict = inc.verdict ? inc.verdict.replace("_", " ") : "–";
  const row = el("tr", {"data-event-id": inc.event_id, "data-severity": inc.severity,
                        "data-verdict": inc.verdict || "", className: "sev-" + inc.severity},
    el("td", {text: clock(inc.started_at)}),
    el("td", {text: inc.site + " / " + inc.device}),
    el("td", {text: inc.camera}),
    el("td", {text: inc.rule}),
    el("td", {className: "severity", text: inc.severity}),
    el("td", {text: what}),
    el("td", {className: "phase", text: inc.last_phase}),
    el("td", {className: "verdict", text: verdict}));
  row.addEventListener("click", () => { window.location.href = "/alert/" + encodeURIComponent(inc.event_id); });
  return row;
}

function upsert(inc, fresh) {
  const body = document.querySelector("#alerts tbody");
  const row = alertRow(inc);
  const old = body.querySelector(`tr[data-event-id="${CSS.escape(inc.event_id)}"]`);
  if (old) old.replaceWith(row);
  else {
    // newest start first: find the first row that started earlier
    const rows = Array.from(body.rows);
    const later = rows.find((r) => r.dataset.started < inc.started_at);
    body.insertBefore(row, later || null);
  }
  row.dataset.started = inc.started_at;
  if (fresh) { row.classList.add("fresh"); setTimeout(() => row.classList.remove("fresh"), 4000); }
  document.getElementById("empty").hidden = body.rows.length > 0;
}

async function loadAlerts() {
  const table = document.getElementById("alerts");
  table.dataset.ready = "0";
  const q = filterQuery();
  const data = await api("/api/incidents?" + q.toString());
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const inc of data.incidents.slice().reverse()) upsert(inc, false);
  document.getElementById("empty").hidden = data.incidents.length > 0;
  table.dataset.ready = "1";
  openStream(q, data.as_of);
}

function openStream(q, since) {
  if (stream) stream.close();
  const live = document.getElementById("live");
  q.set("since", String(since));
  stream = new EventSource("/api/stream?" + q.toString());
  stream.addEventListener("open", () => { live.textContent = "live"; live.className = "live on"; });
  stream.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "live off"; });
  stream.addEventListener("incident", (ev) => upsert(JSON.parse(ev.data), true));
}

async function loadFacets() {
  const facets = await api("/api/facets");
  const form = document.getElementById("filters");
  for (const [name, values] of Object.entries(facets)) {
    const select = form.elements[name];
    const current = select.value;
    select.replaceChildren(el("option", {value: "", text: "all"}));
    for (const v of values) select.append(el("option", {value: v, text: v}));
    select.value = current;
  }
}

function cameraCell(cameras) {
  const cell = el("td", {className: "cameras"});
  for (const c of cameras) {
    cell.append(el("span", {className: "cam state-" + c.state, "data-camera": c.camera, "data-state": c.state,
                            title: "reported " + c.reported + " since " + clock(c.since),
                            text: c.camera + ": " + c.state + " since " + clock(c.since)}));
  }
  return cell;
}

async function loadHealth() {
  const table = document.getElementById("health");
  const data = await api("/api/health");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const d of data.devices) {
    body.append(el("tr", {"data-device": d.site + "/" + d.device, "data-state": d.state},
      el("td", {text: d.site + " / " + d.device}),
      el("td", {className: "state state-" + d.state, text: d.state + (d.reason ? " (" + d.reason + ")" : "")}),
      el("td", {text: clock(d.since)}),
      el("td", {text: clock(d.last_seen)}),
      el("td", {text: d.outbox_depth === null ? "–" : String(d.outbox_depth)}),
      cameraCell(d.cameras)));
  }
  document.getElementById("health-empty").hidden = data.devices.length > 0;
  table.dataset.ready = "1";
}

function showTab() {
  const health = window.location.hash === "#health";
  document.getElementById("alerts-view").hidden = health;
  document.getElementById("health-view").hidden = !health;
  document.getElementById("tab-alerts").classList.toggle("active", !health);
  document.getElementById("tab-health").classList.toggle("active", health);
  clearInterval(healthTimer);
  if (health) {
    loadHealth();
    healthTimer = setInterval(loadHealth, 3000);
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  showMe();
  const form = document.getElementById("filters");
  form.addEventListener("change", () => loadAlerts());
  form.addEventListener("reset", () => setTimeout(loadAlerts, 0));
  window.addEventListener("hashchange", showTab);
  showTab();
  await loadFacets().catch(() => {});
  await loadAlerts();
  setInterval(() => loadFacets().catch(() => {}), 30000);
});

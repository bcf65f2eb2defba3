// The list (alerts and warnings, info records on their own tab; live over Server-Sent Events;
// filters kept in the address and for the next visit; bulk acknowledge / false alarm) and the
// health board.
"use strict";

const FILTERS = ["site", "device", "camera", "rule", "severity", "state", "from", "to"];
const SAVED = "console.list.filters";
const OPEN = new Set(["new", "acknowledged", "dispatched"]);
const incidents = new Map(); // event_id -> incident, as shown
const selected = new Set();
let stream = null;
let healthTimer = null;
let deviceZones = new Map(); // "site/device" and "site" -> the zone its box announced
let listZone = "UTC";

function view() {
  const h = window.location.hash.replace("#", "");
  return h === "info" || h === "health" ? h : "alerts";
}

// --- filters ----------------------------------------------------------------------------

function readFilters() {
  const form = document.getElementById("filters");
  const out = {};
  for (const name of FILTERS) if (form.elements[name].value) out[name] = form.elements[name].value;
  return out;
}

// The address keeps the filters (reload, back from an alert); the browser keeps them for the next visit.
function keepFilters() {
  const f = readFilters();
  const n = Object.keys(f).length;
  document.getElementById("filter-count").textContent = n ? "(" + n + " set)" : "";
  const q = new URLSearchParams(f);
  const search = q.toString() ? "?" + q.toString() : "";
  history.replaceState(null, "", window.location.pathname + search + window.location.hash);
  try { localStorage.setItem(SAVED, search); } catch (err) { /* private mode: the address still has them */ }
  for (const name of ["alerts", "info", "health"]) document.getElementById("tab-" + name).href = "/" + search + "#" + name;
}

function restoreFilters() {
  let search = window.location.search;
  if (!search) {
    try { search = localStorage.getItem(SAVED) || ""; } catch (err) { search = ""; }
  }
  const q = new URLSearchParams(search);
  const form = document.getElementById("filters");
  for (const name of FILTERS) {
    const value = q.get(name);
    if (!value) continue;
    const field = form.elements[name];
    if (field.tagName === "SELECT" && !Array.from(field.options).some((o) => o.value === value)) {
      field.append(el("option", {value, text: value}));
    }
    field.value = value;
  }
}

// From/To are read in the zone of the selected village (or of every box, when they agree).
function pickListZone() {
  listZone = zoneOfSites(deviceZones, document.getElementById("filters").elements.site.value);
  for (const span of document.querySelectorAll(".zone-name")) span.textContent = listZone;
}

function apiQuery(withState) {
  const f = readFilters();
  const q = new URLSearchParams();
  q.set("tab", view() === "info" ? "info" : "alerts");
  for (const [name, value] of Object.entries(f)) {
    if (name === "state" && !withState) continue;
    if (name === "from" || name === "to") {
      const epoch = wallToEpoch(value, listZone);
      if (epoch !== null) q.set(name, timeParam(epoch));
    } else {
      q.set(name, value);
    }
  }
  return q;
}

// --- the list ---------------------------------------------------------------------------

function rank(inc) {
  const open = OPEN.has(inc.state || "new");
  if (open && inc.severity === "alert") return 0;
  if (open && inc.severity === "warning") return 1;
  return open ? 2 : 3;
}

function ordered() {
  return Array.from(incidents.values()).sort((a, b) => rank(a) - rank(b) ||
    (b.started_epoch || toMs(b.started_at) / 1000) - (a.started_epoch || toMs(a.started_at) / 1000));
}

// Would the list as filtered show this incident? (The stream is not filtered by state: a row
// whose state moves out of the filter must leave.)
function matches(inc) {
  const f = readFilters();
  const info = inc.severity === "info";
  if ((view() === "info") !== info) return false;
  if (!f.state) return true;
  if (f.state === "open") return OPEN.has(inc.state || "new");
  return (inc.state || "new") === f.state;
}

function ackCell(inc) {
  if (inc.time_to_ack_s !== null && inc.time_to_ack_s !== undefined) {
    return el("td", {className: "tta", "data-label": "To acknowledge", text: duration(inc.time_to_ack_s)});
  }
  if ((inc.state || "new") === "new" && inc.severity !== "info") { // a line crossing waits for nobody
    const started = inc.started_epoch || toMs(inc.started_at) / 1000;
    return el("td", {className: "tta waiting", "data-label": "To acknowledge", "data-started": String(started),
                     text: "waiting " + duration(Date.now() / 1000 - started)});
  }
  return el("td", {className: "tta", "data-label": "To acknowledge", text: inc.severity === "info" ? "" : "–"});
}

function alertRow(inc) {
  const zone = zoneFor(inc.timezone);
  const what = (inc.label || inc.kind) + (inc.zone ? " in " + inc.zone : "");
  const state = inc.state || "new";
  const village = inc.site_name || inc.site;
  const pick = el("input", {type: "checkbox", className: "pick-one", checked: selected.has(inc.event_id),
                            "aria-label": "select " + inc.event_id});
  pick.addEventListener("change", () => {
    if (pick.checked) selected.add(inc.event_id); else selected.delete(inc.event_id);
    showSelection();
  });
  const row = el("tr", {"data-event-id": inc.event_id, "data-severity": inc.severity, "data-state": state,
                        "data-verdict": inc.verdict || "", className: "sev-" + inc.severity + " st-" + state},
    el("td", {className: "pick"}, pick),
    el("td", {className: "started", "data-label": "Started"},
      localTime(inc.started_at, zone, {zone: false}), el("span", {className: "zone", text: " " + zone})),
    el("td", {className: "where", "data-label": "Village / camera", title: inc.site + " / " + inc.device,
              text: village + " / " + inc.camera}),
    el("td", {className: "rule", "data-label": "Rule", text: inc.rule}),
    el("td", {className: "severity", "data-label": "Severity", text: inc.severity}),
    el("td", {className: "what", "data-label": "What"},
      el("a", {href: "/incident/" + encodeURIComponent(inc.event_id), text: what})),
    el("td", {className: "state", "data-label": "State"},
      el("span", {className: "badge st-" + state, text: stateText(state)}),
      inc.assignee ? " → " + inc.assignee : ""),
    ackCell(inc));
  row.addEventListener("click", (ev) => {
    if (ev.target.closest(".pick, a")) return;
    window.location.href = "/incident/" + encodeURIComponent(inc.event_id);
  });
  return row;
}

function render(fresh) {
  const body = document.querySelector("#alerts tbody");
  const rows = ordered().map((inc) => {
    const row = alertRow(inc);
    if (fresh === inc.event_id) {
      row.classList.add("fresh");
      setTimeout(() => row.classList.remove("fresh"), 4000);
    }
    return row;
  });
  body.replaceChildren(...rows);
  document.getElementById("empty").hidden = rows.length > 0;
  for (const id of Array.from(selected)) if (!incidents.has(id)) selected.delete(id);
  showSelection();
}

function upsert(inc) {
  if (matches(inc)) incidents.set(inc.event_id, inc);
  else incidents.delete(inc.event_id);
  render(inc.event_id);
}

async function loadList() {
  const table = document.getElementById("alerts");
  table.dataset.ready = "0";
  keepFilters();
  pickListZone();
  const data = await api("/api/incidents?" + apiQuery(true).toString());
  incidents.clear();
  for (const inc of data.incidents) incidents.set(inc.event_id, inc);
  render(null);
  table.dataset.ready = "1";
  openStream(data.as_of);
}

function openStream(since) {
  if (stream) stream.close();
  const live = document.getElementById("live");
  const q = apiQuery(false);
  if (since) q.set("since", String(since));
  stream = new EventSource("/api/stream?" + q.toString());
  stream.addEventListener("open", () => { live.textContent = "live"; live.className = "live on"; });
  stream.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "live off"; });
  stream.addEventListener("incident", (ev) => upsert(JSON.parse(ev.data)));
}

function tickWaiting() {
  for (const cell of document.querySelectorAll("td.tta.waiting")) {
    cell.textContent = "waiting " + duration(Date.now() / 1000 - Number(cell.dataset.started));
  }
}

// --- bulk -------------------------------------------------------------------------------

function showSelection() {
  const n = selected.size;
  document.getElementById("selected-count").textContent = n + " selected";
  const readOnly = document.body.classList.contains("read-only");
  document.getElementById("bulk-ack").disabled = n === 0 || readOnly;
  document.getElementById("bulk-false").disabled = n === 0 || readOnly;
  const all = document.getElementById("select-all");
  all.checked = n > 0 && n === incidents.size;
  all.indeterminate = n > 0 && n < incidents.size;
}

async function bulk(state) {
  const result = document.getElementById("bulk-result");
  const ids = Array.from(selected);
  result.textContent = "saving…";
  result.className = "muted";
  try {
    const out = await postJSON("/api/incidents/bulk", {event_ids: ids, state});
    const errors = Object.entries(out.errors || {});
    result.textContent = out.changed.length + " marked " + stateText(state) +
      (errors.length ? "; not changed: " + errors.map(([id, msg]) => id + " (" + msg + ")").join(", ") : "");
    result.className = errors.length ? "error" : "muted";
    selected.clear();
    await loadList();
  } catch (err) {
    result.textContent = "could not save: " + err.message;
    result.className = "error";
  }
}

// --- health -----------------------------------------------------------------------------

function cameraCell(d, zone) {
  const cell = el("td", {className: "cameras", "data-label": "Cameras"});
  for (const c of d.cameras) {
    cell.append(el("span", {className: "cam state-" + c.state, "data-camera": c.camera, "data-state": c.state,
                            title: "reported " + c.reported + " since " + localTime(c.since, zone),
                            text: c.camera + ": " + c.state + " since " + localTime(c.since, zone)}));
  }
  return cell;
}

async function loadHealth() {
  const table = document.getElementById("health");
  const data = await api("/api/health");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const d of data.devices) {
    const zone = zoneFor(d.timezone);
    const village = d.site_name ? d.site_name + " (" + d.site + ")" : d.site;
    if (!d.cameras) d.cameras = [];
    body.append(el("tr", {"data-device": d.site + "/" + d.device, "data-state": d.state},
      el("td", {"data-label": "Village / device"}, village + " / ",
        el("a", {className: "device-link", href: "/device/" + encodeURIComponent(d.site) + "/" + encodeURIComponent(d.device),
                 text: d.device})),
      el("td", {className: "state state-" + d.state, "data-label": "State",
                text: d.state + (d.reason ? " (" + d.reason + ")" : "")}),
      el("td", {"data-label": "Since", text: localTime(d.since, zone)}),
      el("td", {"data-label": "Last heard", text: localTime(d.last_seen, zone)}),
      el("td", {"data-label": "Outbox depth", text: d.outbox_depth === null ? "–" : String(d.outbox_depth)}),
      cameraCell(d, zone)));
  }
  document.getElementById("health-empty").hidden = data.devices.length > 0;
  table.dataset.ready = "1";
}

// --- tabs -------------------------------------------------------------------------------

function showView() {
  const v = view();
  document.getElementById("alerts-view").hidden = v === "health";
  document.getElementById("health-view").hidden = v !== "health";
  for (const name of ["alerts", "info", "health"]) {
    document.getElementById("tab-" + name).classList.toggle("active", v === name);
  }
  document.getElementById("severity-filter").hidden = v === "info";
  document.getElementById("live").hidden = v === "health";
  document.title = "Town console — " + v;
  clearInterval(healthTimer);
  if (v === "health") {
    if (stream) stream.close();
    loadHealth();
    healthTimer = setInterval(() => loadHealth().catch(() => {}), 3000);
  } else {
    if (v === "info") document.getElementById("filters").elements.severity.value = "";
    selected.clear();
    loadList().catch(showLoadError);
  }
}

function showLoadError(err) {
  document.getElementById("bulk-result").textContent = "could not load: " + err.message;
  document.getElementById("bulk-result").className = "error";
}

async function loadFacets() {
  const facets = await api("/api/facets");
  const form = document.getElementById("filters");
  for (const name of ["site", "device", "camera", "rule"]) {
    const select = form.elements[name];
    const current = select.value;
    select.replaceChildren(el("option", {value: "", text: "all"}));
    for (const v of facets[name] || []) select.append(el("option", {value: v, text: v}));
    if (current && !(facets[name] || []).includes(current)) select.append(el("option", {value: current, text: current}));
    select.value = current;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  await initPage();
  restoreFilters();
  // a phone: the list first, the filters one tap away
  if (window.matchMedia("(max-width: 700px)").matches) document.getElementById("filter-box").open = false;
  const form = document.getElementById("filters");
  form.addEventListener("change", () => loadList().catch(showLoadError));
  form.addEventListener("reset", () => setTimeout(() => loadList().catch(showLoadError), 0));
  document.getElementById("select-all").addEventListener("change", (ev) => {
    selected.clear();
    if (ev.target.checked) for (const id of incidents.keys()) selected.add(id);
    render(null);
  });
  document.getElementById("bulk-ack").addEventListener("click", () => bulk("acknowledged"));
  document.getElementById("bulk-false").addEventListener("click", () => bulk("false_alarm"));
  window.addEventListener("hashchange", showView);
  [, deviceZones] = await Promise.all([loadFacets().catch(() => {}), announcedZones()]);
  showView();
  setInterval(tickWaiting, 15000);
  setInterval(() => loadFacets().catch(() => {}), 30000);
});

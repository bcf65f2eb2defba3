// Counts as charts, per hour and per day, one coloured series per village / camera / rule;
// the totals; CSV export links for the chosen dates. Buckets are the village's local hours and days.
"use strict";

const COLOURS = ["#2f6fb3", "#e08a00", "#2e7d32", "#c62828", "#6a4c93", "#00838f", "#8d6e63", "#ad1457"];
const FIELDS = ["site", "camera", "rule", "from", "to"];
const MAX_HOURS = 24 * 62;
const charts = {};
let zones = new Map();
let seriesZone = "UTC";
let askZone = null; // the zone to ask the buckets in; none: the console decides

function readFilters() {
  const form = document.getElementById("filters");
  const out = {};
  for (const name of FIELDS) if (form.elements[name].value) out[name] = form.elements[name].value;
  return out;
}

function keyOf(row) {
  return row.site + " / " + row.camera + " / " + row.rule;
}

// A bucket's start ("2026-11-26T16:00:00+08:00" or a wall clock without offset) -> epoch seconds.
function bucketEpoch(bucket) {
  if (/(Z|[+-]\d{2}:?\d{2})$/.test(bucket)) return Date.parse(bucket) / 1000;
  return wallToEpoch(bucket.slice(0, 16), seriesZone);
}

function dayAfter(date) {
  const d = new Date(Date.parse(date + "T00:00:00Z") + 86400000);
  return d.toISOString().slice(0, 10);
}

// Every hour (or day) from the first bucket to the last, so that a quiet hour shows as a gap.
function labelsFor(rows, bucket) {
  if (rows.length === 0) return [];
  if (bucket === "day") {
    const days = rows.map((r) => r.bucket.slice(0, 10)).sort();
    const out = [days[0]];
    while (out[out.length - 1] < days[days.length - 1] && out.length < 3660) out.push(dayAfter(out[out.length - 1]));
    return out;
  }
  const epochs = rows.map((r) => bucketEpoch(r.bucket));
  const first = Math.min(...epochs), last = Math.max(...epochs);
  const out = [];
  for (let t = first; t <= last && out.length < MAX_HOURS; t += 3600) out.push(localTime(t, seriesZone, {seconds: false, zone: false}));
  return out;
}

function labelOf(row, bucket) {
  return bucket === "day" ? row.bucket.slice(0, 10) : localTime(bucketEpoch(row.bucket), seriesZone, {seconds: false, zone: false});
}

// "2026-11-26 16:00" -> "16:00", and the date at midnight (the tooltip keeps the whole label)
function hourTick(value) {
  const label = this.getLabelForValue(value);
  return label.endsWith(" 00:00") ? label.slice(5, 10) : label.slice(11);
}

function draw(canvasId, rows, bucket) {
  const canvas = document.getElementById(canvasId);
  const labels = labelsFor(rows, bucket);
  const index = new Map(labels.map((l, i) => [l, i]));
  const byKey = new Map();
  let total = 0;
  for (const r of rows) {
    const i = index.get(labelOf(r, bucket));
    if (i === undefined) continue;
    if (!byKey.has(r.key)) byKey.set(r.key, new Array(labels.length).fill(0));
    byKey.get(r.key)[i] += r.count;
    total += r.count;
  }
  const datasets = Array.from(byKey.entries()).sort().map(([key, data], n) => ({
    label: key, data, backgroundColor: COLOURS[n % COLOURS.length], borderWidth: 0,
  }));
  canvas.dataset.total = String(total);
  canvas.dataset.buckets = String(labels.length);
  canvas.dataset.series = String(datasets.length);
  if (!window.Chart) throw new Error("the chart library is missing (/vendor/chart.umd.js): run `make setup`");
  if (charts[canvasId]) charts[canvasId].destroy();
  charts[canvasId] = new window.Chart(canvas, {
    type: "bar",
    data: {labels, datasets},
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      scales: {x: {stacked: true, ticks: Object.assign({autoSkip: true, maxRotation: 0}, bucket === "hour" ? {callback: hourTick} : {})},
               y: {stacked: true, beginAtZero: true, ticks: {precision: 0}}},
      plugins: {legend: {position: "bottom", labels: {boxWidth: 12}}},
    },
  });
  canvas.dataset.ready = "1";
}

function seriesQuery(bucket, f, from, to) {
  const q = new URLSearchParams({bucket});
  if (askZone) q.set("tz", askZone);
  for (const name of ["site", "camera", "rule"]) if (f[name]) q.set(name, f[name]);
  if (from !== null) q.set("from", timeParam(from));
  if (to !== null) q.set("to", timeParam(to));
  return q;
}

async function series(bucket, f, from, to) {
  const data = await api("/api/counts/series?" + seriesQuery(bucket, f, from, to).toString());
  if (data.timezone) seriesZone = data.timezone;
  for (const r of data.series) r.key = keyOf(r);
  return data.series;
}

function showTotals(rows) {
  const sums = new Map();
  for (const r of rows) {
    const k = r.key;
    if (!sums.has(k)) sums.set(k, {site: r.site, camera: r.camera, rule: r.rule, count: 0});
    sums.get(k).count += r.count;
  }
  const body = document.querySelector("#totals tbody");
  body.replaceChildren(...Array.from(sums.values()).sort((a, b) => b.count - a.count).map((s) =>
    el("tr", {"data-key": keyOf(s)}, el("td", {text: s.site}), el("td", {text: s.camera}), el("td", {text: s.rule}),
      el("td", {className: "num", text: String(s.count)}))));
  document.getElementById("counts-empty").hidden = sums.size > 0;
}

function showExports(f, from, to) {
  const q = new URLSearchParams();
  if (from !== null) q.set("from", timeParam(from));
  if (to !== null) q.set("to", timeParam(to));
  const counts = q.toString();
  for (const name of ["site", "camera", "rule"]) if (f[name]) q.set(name, f[name]);
  document.getElementById("export-incidents").href = "/api/export/incidents.csv" + (q.toString() ? "?" + q : "");
  document.getElementById("export-counts").href = "/api/export/counts.csv" + (counts ? "?" + counts : "");
}

async function load() {
  const page = document.getElementById("counts-page");
  page.dataset.ready = "0";
  const error = document.getElementById("counts-error");
  error.hidden = true;
  const f = readFilters();
  const q = new URLSearchParams(f);
  history.replaceState(null, "", "/counts" + (q.toString() ? "?" + q : ""));
  const zone = zoneOfSites(zones, f.site);
  askZone = consoleZone || zone !== "UTC" ? zone : null;
  for (const span of document.querySelectorAll(".zone-name")) span.textContent = zone;
  const from = f.from ? wallToEpoch(f.from, zone) : null;
  const to = f.to ? wallToEpoch(dayAfter(f.to), zone) : null;
  showExports(f, from, to);
  try {
    const days = await series("day", f, from, to);
    let hourFrom = from;
    if (hourFrom === null && days.length) {
      // no dates chosen: the hours of the last two days that have counts
      const lastDay = days.map((r) => r.bucket.slice(0, 10)).sort().pop();
      hourFrom = wallToEpoch(lastDay, seriesZone) - 86400;
    }
    const hours = await series("hour", f, hourFrom, to);
    showTotals(days);
    document.getElementById("day-range").textContent = "(" + seriesZone + ")";
    document.getElementById("hour-range").textContent = "(" + seriesZone + (from === null && hours.length ?
      ", the last two days with counts" : "") + ")";
    draw("per-day", days, "day");
    draw("per-hour", hours, "hour");
  } catch (err) {
    error.textContent = "could not draw the counts: " + err.message;
    error.hidden = false;
  }
  page.dataset.ready = "1";
}

async function loadOptions() {
  const rows = await series("day", {}, null, null);
  const form = document.getElementById("filters");
  for (const name of ["site", "camera", "rule"]) {
    const select = form.elements[name];
    const current = select.value;
    const values = Array.from(new Set(rows.map((r) => r[name]).concat(current ? [current] : []))).sort();
    select.replaceChildren(el("option", {value: "", text: "all"}), ...values.map((v) => el("option", {value: v, text: v})));
    select.value = current;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  await initPage();
  zones = await announcedZones();
  const form = document.getElementById("filters");
  const q = new URLSearchParams(window.location.search);
  for (const name of FIELDS) {
    const v = q.get(name);
    if (!v) continue;
    if (form.elements[name].tagName === "SELECT") form.elements[name].append(el("option", {value: v, text: v}));
    form.elements[name].value = v;
  }
  await loadOptions().catch(() => {});
  form.addEventListener("change", load);
  form.addEventListener("reset", () => setTimeout(load, 0));
  await load();
});

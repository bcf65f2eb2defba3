// Shared by the console's pages: the JSON API, building elements, times in a village's zone.
"use strict";

async function api(path, options) {
  const resp = await fetch(path, Object.assign({credentials: "same-origin"}, options || {}));
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || ("HTTP " + resp.status));
  return body;
}

function postJSON(path, body) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// --- settings ---------------------------------------------------------------------------

let settingsPromise = null;

// The console's settings: its own time zone override, the map's tiles, read-only, the user.
function settings() {
  if (!settingsPromise) {
    settingsPromise = api("/api/settings").catch(() => ({timezone: null, tile_url: null, read_only: false}));
  }
  return settingsPromise;
}

let consoleZone = null; // set from the settings by initPage(): the console's override, if any

// --- time zones -------------------------------------------------------------------------

const formatters = new Map();

function validZone(zone) {
  if (!zone) return false;
  try {
    new Intl.DateTimeFormat("en-US", {timeZone: zone});
    return true;
  } catch (err) {
    return false;
  }
}

// The zone a village's times are shown in: the console's override, else what its box announced, else UTC.
function zoneFor(announced) {
  if (validZone(consoleZone)) return consoleZone;
  if (validZone(announced)) return announced;
  return "UTC";
}

function partsIn(ms, zone) {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"});
    formatters.set(zone, f);
  }
  const out = {};
  for (const p of f.formatToParts(new Date(ms))) out[p.type] = p.value;
  if (out.hour === "24") out.hour = "00";
  return out;
}

function toMs(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") return value * 1000;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

// An ISO time or epoch seconds -> "2026-11-26 16:15:02 Asia/Shanghai" (seconds and zone optional).
function localTime(value, zone, opts) {
  const ms = toMs(value);
  if (ms === null) return "–";
  const z = validZone(zone) ? zone : "UTC";
  const p = partsIn(ms, z);
  const o = opts || {};
  let text = p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  if (o.seconds !== false) text += ":" + p.second;
  if (o.zone !== false) text += " " + z;
  return text;
}

// Milliseconds to add to UTC to get the wall clock of `zone` at the instant `ms`.
function zoneOffsetMs(ms, zone) {
  const p = partsIn(ms, zone);
  const wall = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return wall - Math.floor(ms / 1000) * 1000;
}

// "2026-11-26T16:15[:02]" read as a wall clock in `zone` -> epoch seconds.
function wallToEpoch(text, zone) {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(text || "");
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
  const z = validZone(zone) ? zone : "UTC";
  let ms = wall - zoneOffsetMs(wall, z);
  ms = wall - zoneOffsetMs(ms, z); // again at the guessed instant: right across a DST change
  return ms / 1000;
}

// Epoch seconds -> "2026-11-26T16:15" wall clock in `zone` (for datetime-local inputs).
function epochToWall(epoch, zone) {
  const p = partsIn(epoch * 1000, validZone(zone) ? zone : "UTC");
  return p.year + "-" + p.month + "-" + p.day + "T" + p.hour + ":" + p.minute;
}

// Seconds -> "45 s", "3 min 20 s", "25 min", "2 h 05 min", "3 d 4 h".
function duration(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "–";
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + " s";
  if (s < 600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

function stateText(state) {
  return (state || "new").replace("_", " ");
}

// --- page frame -------------------------------------------------------------------------

async function showMe() {
  const me = document.getElementById("me");
  if (!me) return;
  try {
    const who = await api("/api/me");
    me.textContent = who.name;
  } catch (err) {
    me.textContent = "";
  }
}

// Every page: the user's name, the console's zone override, the read-only banner.
async function initPage() {
  showMe();
  const s = await settings();
  consoleZone = s.timezone || null;
  if (s.read_only) {
    document.body.classList.add("read-only");
    const banner = document.getElementById("read-only");
    if (banner) banner.hidden = false;
  }
  return s;
}

// Epoch seconds -> the form the API's `from` / `to` take (RFC 3339 UTC).
function timeParam(epoch) {
  return new Date(epoch * 1000).toISOString().replace(".000Z", "Z");
}

// The zones the boxes announced, per "site" and "site/device" (from /api/health).
async function announcedZones() {
  const zones = new Map();
  try {
    const health = await api("/api/health");
    for (const d of health.devices) {
      if (!d.timezone) continue;
      zones.set(d.site + "/" + d.device, d.timezone);
      zones.set(d.site, d.timezone);
    }
  } catch (err) { /* UTC then */ }
  return zones;
}

// One zone for a page that covers several villages: the selected village's, or the one all agree on.
function zoneOfSites(zones, site) {
  const found = new Set();
  for (const [key, zone] of zones) if (!key.includes("/") && (!site || key === site)) found.add(zone);
  return zoneFor(found.size === 1 ? [...found][0] : null);
}

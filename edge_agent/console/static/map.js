// Villages and cameras where their boxes say they are, coloured by health: on map tiles when the
// console has a tile server it can reach, else on a plain coordinate plan (SVG).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PAD = 60;
let W = 1000, H = 600;
const COLOURS = {online: "#2e7d32", stalled: "#e08a00", offline: "#c62828", unknown: "#8a929c"};
const REFRESH_MS = 10000;
let leafletMap = null;
let leafletLayer = null;

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c);
  return node;
}

function colour(state) {
  return COLOURS[state] || COLOURS.unknown;
}

// Every place with coordinates: one per village, one per camera.
function places(data) {
  const out = [];
  for (const s of data.sites) {
    const name = s.site_name ? s.site_name + " (" + s.site + ")" : s.site;
    if (s.location) {
      out.push({kind: "site", site: s.site, name, label: s.site_name || s.site, state: s.state,
                lat: s.location.lat, lon: s.location.lon});
    }
    for (const d of s.devices || []) {
      for (const c of d.cameras || []) {
        if (c.location) {
          out.push({kind: "camera", site: s.site, device: d.device, camera: c.camera, name: c.camera, state: c.state,
                    lat: c.location.lat, lon: c.location.lon});
        }
      }
    }
  }
  return out;
}

function roundMetres(m) {
  const p = Math.pow(10, Math.floor(Math.log10(m)));
  for (const f of [5, 2, 1]) if (f * p <= m) return f * p;
  return p;
}

function drawPlan(data) {
  const plan = document.getElementById("plan");
  const pts = places(data);
  plan.replaceChildren();
  // drawn at the size it is shown, so that its labels keep their size on a phone
  W = Math.max(320, Math.round(plan.getBoundingClientRect().width) || 1000);
  H = Math.round(Math.min(600, Math.max(300, W * 0.6)));
  plan.setAttribute("viewBox", "0 0 " + W + " " + H);
  plan.dataset.cameras = String(pts.filter((p) => p.kind === "camera").length);
  if (pts.length === 0) return;
  const lat0 = pts.reduce((a, p) => a + p.lat, 0) / pts.length;
  const k = Math.cos(lat0 * Math.PI / 180); // a degree of longitude is this much shorter than one of latitude
  const xs = pts.map((p) => p.lon * k), ys = pts.map((p) => p.lat);
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const span = Math.max(maxX - minX, maxY - minY, 0.0005);
  const scale = Math.min((W - 2 * PAD) / Math.max(maxX - minX, span / 4), (H - 2 * PAD) / Math.max(maxY - minY, span / 4));
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  const at = (p) => [W / 2 + (p.lon * k - cx) * scale, H / 2 - (p.lat - cy) * scale];
  plan.append(svg("rect", {x: 0, y: 0, width: W, height: H, class: "plan-bg"}));
  // a scale bar: a degree of latitude is about 111 km
  const metresPerUnit = 111320 / scale;
  const bar = roundMetres(metresPerUnit * 200);
  const barPx = bar / metresPerUnit;
  plan.append(svg("g", {class: "scale"},
    svg("line", {x1: 20, y1: H - 24, x2: 20 + barPx, y2: H - 24}),
    svg("text", {x: 20, y: H - 32}, document.createTextNode(bar >= 1000 ? bar / 1000 + " km" : bar + " m")),
    svg("text", {x: W - 30, y: 34, class: "north"}, document.createTextNode("N ↑"))));
  // a label on the side with room for it
  const label = (x, y, dx, text, cls) => {
    const left = x > W * 0.6;
    return svg("text", {x: left ? x - dx : x + dx, y, "text-anchor": left ? "end" : "start", class: cls || ""},
      document.createTextNode(text));
  };
  for (const p of pts.filter((q) => q.kind === "site")) {
    const [x, y] = at(p);
    plan.append(svg("g", {class: "site", "data-site": p.site, "data-state": p.state || "unknown"},
      svg("title", {}, document.createTextNode(p.name + ": " + (p.state || "unknown"))),
      svg("rect", {x: x - 9, y: y - 9, width: 18, height: 18, fill: colour(p.state), class: "site-mark"}),
      label(x, y - 12, 14, p.label, "site-name")));
  }
  for (const p of pts.filter((q) => q.kind === "camera")) {
    const [x, y] = at(p);
    const title = svg("title", {}, document.createTextNode(p.site + " / " + p.device + " / " + p.camera + ": " + p.state));
    plan.append(svg("g", {class: "camera", "data-camera": p.camera, "data-device": p.site + "/" + p.device,
                          "data-state": p.state || "unknown"},
      title, svg("circle", {cx: x, cy: y, r: 9, fill: colour(p.state)}), label(x, y + 5, 13, p.camera)));
  }
}

function showTable(data) {
  const rows = [];
  const where = (loc) => loc ? loc.lat.toFixed(5) + ", " + loc.lon.toFixed(5) : "not announced";
  for (const s of data.sites) {
    const village = s.site_name ? s.site_name + " (" + s.site + ")" : s.site;
    for (const d of s.devices || []) {
      const cams = d.cameras && d.cameras.length ? d.cameras : [{camera: "–", state: d.state, location: s.location}];
      for (const c of cams) {
        rows.push(el("tr", {"data-camera": c.camera, "data-state": c.state},
          el("td", {"data-label": "Village", text: village}), el("td", {"data-label": "Device", text: d.device}),
          el("td", {"data-label": "Camera", text: c.camera}),
          el("td", {"data-label": "State", className: "state-" + c.state, text: c.state}),
          el("td", {"data-label": "Where", text: where(c.location)})));
      }
    }
  }
  document.querySelector("#places tbody").replaceChildren(...rows);
  document.getElementById("map-empty").hidden = places(data).length > 0;
}

// Can the browser fetch a tile? (No network, a wrong URL or the page's CSP all end in the plan.)
function tilesReachable(url) {
  const probe = url.replace("{s}", "a").replace("{z}", "0").replace("{x}", "0").replace("{y}", "0").replace("{r}", "");
  return new Promise((resolve) => {
    const img = new Image();
    const timer = setTimeout(() => resolve(false), 4000);
    img.onload = () => { clearTimeout(timer); resolve(true); };
    img.onerror = () => { clearTimeout(timer); resolve(false); };
    img.src = probe;
  });
}

function loadLeaflet() {
  return new Promise((resolve, reject) => {
    if (window.L) { resolve(window.L); return; }
    document.head.append(el("link", {rel: "stylesheet", href: "/vendor/leaflet.css"}));
    const script = el("script", {src: "/vendor/leaflet.js"});
    script.onload = () => resolve(window.L);
    script.onerror = () => reject(new Error("/vendor/leaflet.js is missing"));
    document.head.append(script);
  });
}

function drawTiles(L, data) {
  const box = document.getElementById("tiles");
  if (!leafletMap) {
    leafletMap = L.map(box);
    L.tileLayer(data.tile_url, {attribution: data.tile_attribution || "", maxZoom: 19}).addTo(leafletMap);
  }
  if (leafletLayer) leafletLayer.remove();
  leafletLayer = L.layerGroup().addTo(leafletMap);
  const pts = places(data);
  for (const p of pts) {
    const marker = L.circleMarker([p.lat, p.lon], {radius: p.kind === "site" ? 10 : 7, color: "#fff", weight: 2,
                                                    fillColor: colour(p.state), fillOpacity: 1});
    marker.bindTooltip(p.kind === "site" ? p.label : p.name + ": " + (p.state || "unknown"), {permanent: true});
    leafletLayer.addLayer(marker);
  }
  if (pts.length && !box.dataset.fitted) {
    leafletMap.fitBounds(pts.map((p) => [p.lat, p.lon]), {padding: [40, 40], maxZoom: 17});
    box.dataset.fitted = "1";
  }
  box.dataset.cameras = String(pts.filter((p) => p.kind === "camera").length);
}

let mode = null; // "tiles" or "plan", decided once per page

async function refresh() {
  const page = document.getElementById("map-page");
  const error = document.getElementById("map-error");
  try {
    const data = await api("/api/map");
    error.hidden = true;
    if (mode === null) {
      mode = data.tile_url && await tilesReachable(data.tile_url) ? "tiles" : "plan";
      document.getElementById("map-mode").textContent = mode === "tiles" ? "" :
        data.tile_url ? "(the map tiles cannot be reached: a plain plan of the coordinates)" : "(plan of the coordinates)";
    }
    showTable(data);
    if (mode === "tiles") {
      try {
        const L = await loadLeaflet();
        document.getElementById("tiles").hidden = false;
        document.getElementById("plan").setAttribute("hidden", ""); // an SVG element has no `hidden` property
        drawTiles(L, data);
      } catch (err) {
        mode = "plan";
      }
    }
    if (mode === "plan") drawPlan(data);
    page.dataset.mode = mode;
  } catch (err) {
    error.textContent = "could not load the map: " + err.message;
    error.hidden = false;
  }
  page.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", async () => {
  await initPage();
  await refresh();
  setInterval(refresh, REFRESH_MS);
});

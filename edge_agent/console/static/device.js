// One box: its inventory (the last ping and stats), its config with a diff before a push, a
// snapshot, a model update and the history of the commands sent to it. A command is stored
// and sent by the console; this page asks for it again until the box has answered.
"use strict";

const parts = window.location.pathname.replace(/^\/device\//, "").split("/").map(decodeURIComponent);
const site = parts[0] || "";
const device = parts[1] || "";
const base = "/api/devices/" + encodeURIComponent(site) + "/" + encodeURIComponent(device);
const POLL_MS = 700;
const REFRESH_MS = 10000; // the history and the status, for what others send meanwhile
let view = null;
let zone = "UTC";
let loadedText = null; // the config as the box sent it (passwords as ***)
let loadedSha = null; // its file's sha256: a push edited from an older copy is refused by the box

// --- the line diff ----------------------------------------------------------------------

// Lines of `a` and `b` as [" ", line], ["-", line], ["+", line] (longest common subsequence).
function lineDiff(a, b) {
  const n = a.length, m = b.length;
  const lcs = Array.from({length: n + 1}, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
    else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) { out.push(["-", a[i]]); i++; }
    else { out.push(["+", b[j]]); j++; }
  }
  return out;
}

// The changed lines with three lines around each change; null when nothing changed.
function showDiff() {
  const pre = document.getElementById("diff");
  const lines = lineDiff(splitLines(loadedText || ""), splitLines(document.getElementById("config").value));
  const changed = lines.map((l) => l[0] !== " ");
  const nodes = [];
  let skipped = false;
  lines.forEach(([mark, text], k) => {
    const near = changed.slice(Math.max(0, k - 3), k + 4).some(Boolean);
    if (!near) { skipped = true; return; }
    if (skipped) nodes.push(el("span", {className: "gap", text: "…"}));
    skipped = false;
    nodes.push(el("span", {className: mark === "+" ? "add" : mark === "-" ? "del" : "same", text: mark + " " + text + "\n"}));
  });
  const count = changed.filter(Boolean).length;
  pre.replaceChildren(...(count ? nodes : [el("span", {className: "gap", text: "no changes"})]));
  pre.dataset.changes = String(count);
  pre.hidden = false;
  return count;
}

function splitLines(text) {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

// --- commands ---------------------------------------------------------------------------

function showResult(id, row) {
  const p = document.getElementById(id);
  p.dataset.state = row.state;
  p.textContent = row.action + ": " + row.state.replace("_", " ") + (row.message ? " — " + row.message : "");
}

// Send one command and wait for the box's answer; `id` names the element that shows it.
async function command(action, args, id) {
  const p = document.getElementById(id);
  p.dataset.state = "sending";
  p.textContent = action + ": sending…";
  let row;
  try {
    row = await postJSON(base + "/commands", {action: action, args: args || {}});
  } catch (err) {
    p.dataset.state = "failed";
    p.textContent = action + ": " + err.message;
    throw err;
  }
  p.dataset.state = "sent";
  p.textContent = action + ": sent, waiting for the box…";
  loadView().catch(() => {});
  while (row.state === "sent") {
    await new Promise((r) => setTimeout(r, POLL_MS));
    try {
      row = await api(base + "/commands/" + encodeURIComponent(row.id));
    } catch (err) { /* the console restarting: ask again */ }
  }
  showResult(id, row);
  await loadView();
  return row;
}

async function askTheBox() {
  const [ping, config] = await Promise.allSettled([command("ping", {}, "refresh-result"),
    command("config-get", {}, "refresh-result")]);
  const failed = [ping, config].find((r) => r.status === "fulfilled" && r.value.state !== "applied");
  if (failed) showResult("refresh-result", failed.value);
}

async function push() {
  document.getElementById("confirm").hidden = true;
  const args = {config: document.getElementById("config").value};
  if (loadedSha) args.base_sha256 = loadedSha;
  setBusy(true);
  try {
    const row = await command("config-set", args, "push-result");
    if (row.state === "applied") {
      loadedText = null; // the box's new config, read again
      await command("config-get", {}, "refresh-result");
    }
  } finally {
    setBusy(false);
  }
}

function setBusy(busy) {
  for (const id of ["push", "push-confirm", "show-diff", "undo"]) document.getElementById(id).disabled = busy || !canSend();
}

function canSend() {
  return Boolean(view && view.commands.enabled);
}

// --- showing ----------------------------------------------------------------------------

function fact(k, v, key) {
  return [el("dt", {text: k}), el("dd", {"data-key": key, text: v === null || v === undefined || v === "" ? "–" : String(v)})];
}

function showInventory(v) {
  const s = v.status;
  const inv = v.inventory ? v.inventory.data || {} : {};
  const versions = inv.versions || {};
  const model = inv.model || {};
  const disk = inv.disk || {};
  const stats = v.stats || {};
  const outbox = stats.outbox || {};
  // the cameras as the board has them, else as the box listed them in its ping
  const cams = (s.cameras || []).length ? s.cameras.map((c) => c.camera + ": " + c.state).join(", ")
    : Object.entries(inv.cameras || {}).map(([c, state]) => c + ": " + state).join(", ");
  const rows = [
    ["State", s.state + (s.reason ? " (" + s.reason + ")" : "") + " since " + localTime(s.since, zone), "state"],
    ["Last heard", localTime(s.last_seen, zone), "last-heard"],
    ["Cameras", cams, "cameras"],
    ["edge-agent", versions["edge-agent"], "version"],
    ["Runtime", [["Python", versions.python], ["onnxruntime", versions.onnxruntime], ["OpenCV", versions.opencv]]
      .filter(([, v]) => v).map(([k, v]) => k + " " + v).join(", "), "versions"],
    ["Host name", inv.hostname, "hostname"],
    ["Config", inv.config ? inv.config.path + " · sha256 " + String(inv.config.sha256 || "").slice(0, 16) : null, "config"],
    ["Model", model.name ? model.name + (model.sha256 ? " · sha256 " + model.sha256.slice(0, 16) : "") : null, "model"],
    ["Up for", duration(inv.uptime_s !== undefined ? inv.uptime_s : stats.uptime_s), "uptime"],
    ["Free disk", disk.outbox_free_mb !== undefined ? "outbox " + disk.outbox_free_mb + " MB, evidence " + disk.evidence_free_mb + " MB" : null, "disk"],
    ["Outbox", outbox.depth !== undefined ? outbox.depth + " waiting, " + outbox.dropped_total + " dropped" +
      (outbox.oldest_age_s ? ", oldest " + duration(outbox.oldest_age_s) : "") : null, "outbox"],
    ["Stats of", stats.ts ? localTime(stats.ts, zone) : "none received yet", "stats-at"],
    ["Inventory of", v.inventory ? localTime(v.inventory.answered_at, zone) : "not asked yet", "inventory-at"],
  ];
  document.getElementById("inventory").replaceChildren(...rows.flatMap(([k, val, key]) => fact(k, val, key)));
}

function showConfig(v) {
  const area = document.getElementById("config");
  const cfg = v.config && v.config.data;
  const meta = document.getElementById("config-meta");
  if (!cfg) return;
  const dirty = loadedText !== null && area.value !== loadedText;
  if (!dirty && (loadedText === null || loadedSha !== cfg.sha256)) {
    loadedText = cfg.text;
    loadedSha = cfg.sha256;
    area.value = cfg.text;
    document.getElementById("diff").hidden = true;
  }
  meta.textContent = cfg.path + " · sha256 " + String(cfg.sha256).slice(0, 16) + " · read " +
    localTime(v.config.answered_at, zone) + " · passwords shown as *** stay as they are on the box";
  meta.dataset.sha256 = cfg.sha256;
}

function showCameras(v) {
  const select = document.getElementById("camera");
  const names = new Set((v.status.cameras || []).map((c) => c.camera));
  const inv = v.inventory && v.inventory.data && v.inventory.data.cameras;
  for (const c of Object.keys(inv || {})) names.add(c);
  const chosen = select.value;
  select.replaceChildren(...[...names].sort().map((c) => el("option", {value: c, text: c})));
  if (names.has(chosen)) select.value = chosen;
}

function argsText(row) {
  const a = row.args || {};
  return Object.keys(a).length ? " " + Object.entries(a).filter(([k]) => k !== "base_sha256").map(([k, v]) => k + "=" + v).join(" ") : "";
}

function showHistory(v) {
  const body = document.querySelector("#history tbody");
  body.replaceChildren(...v.history.map((row) => {
    const message = el("td", {"data-label": "Message", className: "message", text: row.message || ""});
    if (row.snapshot) {
      message.append(" ", el("a", {href: base + "/snapshot/" + encodeURIComponent(row.id) + ".jpg", text: "picture",
                                   target: "_blank", rel: "noopener"}));
    }
    return el("tr", {"data-command-id": row.id, "data-action": row.action, "data-state": row.state},
      el("td", {"data-label": "Sent", className: "sent", text: localTime(row.issued_at, zone)}),
      el("td", {"data-label": "Who", className: "who", text: row.who}),
      el("td", {"data-label": "Action", className: "action", text: row.action + argsText(row)}),
      el("td", {"data-label": "State", className: "state cmd-" + row.state, text: row.state.replace("_", " ")}),
      message);
  }));
  document.getElementById("history-empty").hidden = v.history.length > 0;
}

function showControls(v) {
  const off = document.getElementById("commands-off");
  off.hidden = v.commands.enabled;
  off.textContent = v.commands.why || "";
  for (const b of document.querySelectorAll(".panel button, .panel input, .panel select")) {
    b.disabled = !v.commands.enabled;
  }
  document.getElementById("config").readOnly = !v.commands.enabled;
}

async function loadView() {
  try {
    view = await api(base);
  } catch (err) {
    const e = document.getElementById("load-error");
    e.textContent = "could not load " + site + "/" + device + ": " + err.message;
    e.hidden = false;
    document.getElementById("device-page").dataset.ready = "1";
    return;
  }
  document.getElementById("load-error").hidden = true;
  const s = view.status;
  zone = zoneFor(s.timezone);
  const village = s.site_name ? s.site_name + " (" + site + ")" : site;
  document.getElementById("title").textContent = village + " / " + device;
  document.title = "Town console — " + device;
  showInventory(view);
  showConfig(view);
  showCameras(view);
  showHistory(view);
  showControls(view);
  document.getElementById("device-page").dataset.ready = "1";
}

function wire() {
  document.getElementById("refresh").addEventListener("click", () => askTheBox().catch(() => {}));
  document.getElementById("show-diff").addEventListener("click", showDiff);
  document.getElementById("undo").addEventListener("click", () => {
    if (loadedText !== null) document.getElementById("config").value = loadedText;
    document.getElementById("diff").hidden = true;
  });
  document.getElementById("push").addEventListener("click", () => {
    const result = document.getElementById("push-result");
    if (showDiff() === 0) {
      result.dataset.state = "";
      result.textContent = "nothing to push: the text is the box's config";
      return;
    }
    result.textContent = "";
    document.getElementById("confirm").hidden = false;
  });
  document.getElementById("push-cancel").addEventListener("click", () => { document.getElementById("confirm").hidden = true; });
  document.getElementById("push-confirm").addEventListener("click", () => push().catch(() => {}));
  document.getElementById("snapshot").addEventListener("click", async () => {
    const img = document.getElementById("snapshot-img");
    const row = await command("snapshot", {camera: document.getElementById("camera").value}, "snapshot-result").catch(() => null);
    if (row && row.snapshot) {
      img.src = base + "/snapshot/" + encodeURIComponent(row.id) + ".jpg";
      img.hidden = false;
    }
  });
  document.getElementById("model-update").addEventListener("click", () => {
    const name = document.getElementById("model-name").value.trim();
    if (!name) return;
    command("model-update", {name: name}, "model-result").catch(() => {});
  });
}

async function main() {
  wire();
  await initPage();
  await loadView();
  // the inventory and the config as they are now, when the box is there to say
  if (view && canSend() && view.status.state === "online") askTheBox().catch(() => {});
  setInterval(() => loadView().catch(() => {}), REFRESH_MS);
}

main();

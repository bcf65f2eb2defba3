// One alert: its snapshot with the boxes of its objects, its clip and owner crop, facts, the timeline of phases, the
// workflow (acknowledge, dispatch to a named person, resolve, false alarm, reopen), notes and
// the audit trail. Every time in the village's zone.
"use strict";

const eventId = decodeURIComponent(window.location.pathname.replace(/^\/(incident|alert)\//, ""));
const incidentPath = "/api/incidents/" + encodeURIComponent(eventId);
// Which buttons each state offers (the server decides; this only hides what it would refuse).
const NEXT = {
  new: ["acknowledge", "dispatch", "resolve", "false-alarm"],
  acknowledged: ["dispatch", "resolve", "false-alarm"],
  dispatched: ["acknowledge", "resolve", "false-alarm"],
  resolved: ["reopen"],
  false_alarm: ["reopen"],
};
const REFRESH_MS = 10000;
let current = null;
let readOnly = false;

function phaseObjects(p) {
  return (p && ((p.event && p.event.objects) || p.objects)) || [];
}

function drawBoxes(objects) {
  const img = document.getElementById("snapshot");
  const canvas = document.getElementById("boxes");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  canvas.style.width = img.clientWidth + "px";
  canvas.style.height = img.clientHeight + "px";
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.lineWidth = Math.max(2, canvas.width / 400);
  ctx.font = Math.max(14, canvas.width / 50) + "px sans-serif";
  for (const o of objects) {
    const [x1, y1, x2, y2] = o.bbox;
    const x = x1 * canvas.width, y = y1 * canvas.height;
    ctx.strokeStyle = "#ffd400";
    ctx.strokeRect(x, y, (x2 - x1) * canvas.width, (y2 - y1) * canvas.height);
    const label = o.label + " #" + o.track_id + " " + Number(o.score).toFixed(2);
    const w = ctx.measureText(label).width + 6;
    const top = Math.max(0, y - parseInt(ctx.font, 10) - 4);
    ctx.fillStyle = "rgba(0,0,0,.6)";
    ctx.fillRect(x, top, w, parseInt(ctx.font, 10) + 4);
    ctx.fillStyle = "#ffd400";
    ctx.fillText(label, x + 3, top + parseInt(ctx.font, 10));
  }
  canvas.dataset.boxes = String(objects.length);
}

function fact(k, v) {
  return [el("dt", {text: k}), el("dd", {text: v === null || v === undefined || v === "" ? "–" : String(v)})];
}

function showFacts(inc, zone) {
  const village = inc.site_name ? inc.site_name + " (" + inc.site + ")" : inc.site;
  const ended = inc.ended_at ? localTime(inc.ended_at, zone) : "no end phase yet";
  const object = (inc.label || "–") + (inc.score !== null && inc.score !== undefined ? " " + Number(inc.score).toFixed(2) : "");
  const rows = [
    ["Village", village], ["Device", inc.device], ["Camera", inc.camera],
    ["Rule", inc.rule + " (" + inc.kind + ")"], ["Severity", inc.severity], ["Zone", inc.zone], ["Object", object],
    ["Started", localTime(inc.started_at, zone)], ["Last phase", inc.last_phase + " at " + localTime(inc.last_ts, zone)],
    ["Event ended", ended],
    ["Acknowledged", inc.acknowledged_at ? localTime(inc.acknowledged_at, zone) + " by " + inc.acknowledged_by +
      " (after " + duration(inc.time_to_ack_s) + ")" : "not yet"],
    ["Resolved", inc.resolved_at ? localTime(inc.resolved_at, zone) : null],
    ["Event id", inc.event_id],
  ];
  document.getElementById("facts").replaceChildren(...rows.flatMap(([k, v]) => fact(k, v)));
}

function showTimeline(inc, zone) {
  const items = (inc.timeline || []).map((p) => {
    const objs = phaseObjects(p).map((o) => o.label + " #" + o.track_id).join(", ") || "no objects";
    const secs = p.event && p.event.duration_s !== undefined ? " · " + Number(p.event.duration_s).toFixed(1) + " s" : "";
    return el("li", {"data-phase": p.phase}, el("strong", {text: p.phase}),
      " " + localTime(p.ts, zone) + secs + " · " + objs);
  });
  document.getElementById("timeline").replaceChildren(...items);
}

function auditText(a) {
  if (a.action === "note") return "note: " + (a.note || "");
  let text = stateText(a.from_state) + " → " + stateText(a.to_state);
  if (a.to_state === "dispatched" && a.assignee) text += " (to " + a.assignee + ")";
  return text;
}

function showAudit(inc, zone) {
  const items = (inc.audit || []).map((a) => el("li", {"data-action": a.action, "data-to-state": a.to_state || ""},
    el("span", {className: "when", text: localTime(a.at_epoch !== undefined ? a.at_epoch : a.at, zone)}),
    el("span", {className: "who", text: a.who}),
    el("span", {className: "what", text: auditText(a)}),
    a.action !== "note" && a.note ? el("span", {className: "said", text: "“" + a.note + "”"}) : null));
  if (items.length === 0) items.push(el("li", {className: "muted", text: "nobody has acted on this alert yet"}));
  document.getElementById("audit").replaceChildren(...items);
  const known = new Set((inc.audit || []).map((a) => a.assignee).filter(Boolean));
  document.getElementById("known-assignees").replaceChildren(...[...known].map((n) => el("option", {value: n})));
}

function showWorkflow(inc) {
  const state = inc.state || "new";
  const badge = document.getElementById("state");
  badge.textContent = stateText(state);
  badge.className = "badge st-" + state;
  badge.dataset.state = state;
  document.getElementById("assignee").textContent = inc.assignee ? "assigned to " + inc.assignee : "";
  const allowed = NEXT[state] || [];
  for (const button of document.querySelectorAll(".workflow .buttons button")) {
    button.hidden = !allowed.includes(button.id);
  }
  for (const field of document.querySelectorAll(".workflow button, .workflow textarea, .workflow input")) {
    field.disabled = readOnly;
  }
}

function show(inc) {
  current = inc;
  const zone = zoneFor(inc.timezone);
  const village = inc.site_name || inc.site;
  document.getElementById("title").textContent = inc.rule + " · " + village + " / " + inc.camera;
  document.title = "Town console — " + inc.rule + " at " + village;
  showWorkflow(inc);
  showFacts(inc, zone);
  showTimeline(inc, zone);
  showAudit(inc, zone);
  showMedia(inc, zone);
}

// The clip (played from the console, which answers Range requests so the player can seek) and
// the crop of who brought a left object, with when they were seen.
function showMedia(inc, zone) {
  const clip = inc.clip_info || null;
  const owner = inc.owner_info || null;
  document.getElementById("media").hidden = !clip && !owner;
  const video = document.getElementById("clip");
  const clipNote = document.getElementById("clip-note");
  document.getElementById("clip-box").hidden = !clip;
  if (clip) {
    video.hidden = !clip.url;
    if (clip.url && video.getAttribute("src") !== clip.url) video.src = clip.url;
    const secs = clip.duration_s !== null && clip.duration_s !== undefined ? Number(clip.duration_s).toFixed(1) + " s" : "";
    if (clip.url) {
      clipNote.textContent = "clip " + secs + ", sha256 checked: it is the one the event names";
      clipNote.className = "muted";
    } else if (clip.purged) {
      clipNote.textContent = "the clip was deleted by retention";
      clipNote.className = "muted";
    } else if (clip.sha256_ok === false) {
      clipNote.textContent = "WARNING: the clip's parts do not add up to the sha256 the event names";
      clipNote.className = "error";
    } else {
      clipNote.textContent = "the clip is arriving: " + clip.chunks_received + " of " + clip.chunks + " parts";
      clipNote.className = "muted";
    }
    clipNote.dataset.complete = clip.complete ? "1" : "0";
  }
  const img = document.getElementById("owner");
  const ownerNote = document.getElementById("owner-note");
  document.getElementById("owner-box").hidden = !owner;
  if (owner) {
    img.hidden = !owner.url;
    if (owner.url && img.getAttribute("src") !== owner.url) img.src = owner.url;
    const who = (owner.label || "owner") + (owner.track_id !== null && owner.track_id !== undefined ? " #" + owner.track_id : "");
    const when = owner.seen_at ? localTime(owner.seen_at, zone) : "–";
    ownerNote.textContent = "brought it: " + who + ", seen " + when +
      (owner.url ? "" : owner.purged ? " (picture deleted by retention)" : " (picture not arrived)");
    ownerNote.className = owner.url && !owner.sha256_ok ? "error" : "muted";
    if (owner.url && !owner.sha256_ok) ownerNote.textContent += " — WARNING: not the sha256 the event names";
  }
}

function showError(text) {
  const error = document.getElementById("workflow-error");
  error.textContent = text;
  error.hidden = !text;
}

async function act(path, body) {
  showError("");
  const buttons = document.querySelectorAll(".workflow button");
  for (const b of buttons) b.disabled = true;
  try {
    await postJSON(incidentPath + path, body);
    document.getElementById("note").value = "";
    document.getElementById("dispatch-form").hidden = true;
    show(await api(incidentPath));
  } catch (err) {
    showError("could not save: " + err.message);
    if (current) showWorkflow(current);
  }
}

function move(to, assignee) {
  const note = document.getElementById("note").value.trim();
  const body = {state: to};
  if (assignee) body.assignee = assignee;
  if (note) body.note = note;
  return act("/state", body);
}

function showSnapshot(inc) {
  const note = document.getElementById("snapshot-note");
  const img = document.getElementById("snapshot");
  // `snapshot`: does the event name one; `snapshot_info`: has it arrived, does its sha256 match
  const info = inc.snapshot_info || (inc.snapshot && typeof inc.snapshot === "object" ? inc.snapshot : null);
  const named = Boolean(inc.snapshot);
  const received = info ? Boolean(info.received) : named;
  if (named && received) {
    const start = (inc.timeline || []).find((p) => p.phase === "start") || (inc.timeline || [])[0];
    const objects = start ? phaseObjects(start) : (inc.objects || []);
    img.addEventListener("load", () => drawBoxes(objects));
    window.addEventListener("resize", () => { if (img.complete) drawBoxes(objects); });
    img.src = inc.snapshot_url || incidentPath + "/snapshot.jpg";
    if (info && info.sha256_ok !== undefined) {
      note.textContent = info.sha256_ok ? "snapshot checked: its sha256 is the one the event names"
        : "WARNING: this snapshot's sha256 is not the one the event names";
      note.className = info.sha256_ok ? "muted" : "error";
    }
  } else {
    document.getElementById("frame").hidden = true;
    note.textContent = named ? "the snapshot has not arrived" : "this event has no snapshot";
  }
}

async function load() {
  try {
    const inc = await api(incidentPath);
    show(inc);
    showSnapshot(inc);
  } catch (err) {
    document.getElementById("title").textContent = "alert " + eventId + ": " + err.message;
  }
  document.querySelector("main").dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", async () => {
  const s = await initPage();
  readOnly = Boolean(s.read_only);
  const back = document.getElementById("back");
  try {
    const saved = localStorage.getItem("console.list.filters");
    if (saved) back.href = "/" + saved + "#alerts";
  } catch (err) { /* the plain list then */ }
  for (const [id, to] of [["acknowledge", "acknowledged"], ["resolve", "resolved"], ["false-alarm", "false_alarm"],
                          ["reopen", "acknowledged"]]) {
    document.getElementById(id).addEventListener("click", () => move(to));
  }
  const form = document.getElementById("dispatch-form");
  document.getElementById("dispatch").addEventListener("click", () => {
    form.hidden = false;
    document.getElementById("assignee-name").focus();
  });
  document.getElementById("dispatch-cancel").addEventListener("click", () => { form.hidden = true; });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = document.getElementById("assignee-name").value.trim();
    if (!name) { showError("give the name of the person sent"); return; }
    move("dispatched", name);
  });
  document.getElementById("add-note").addEventListener("click", () => {
    const text = document.getElementById("note").value.trim();
    if (!text) { showError("write the note first"); return; }
    act("/notes", {text});
  });
  await load();
  // another duty officer may act on the same alert: keep the state and the trail current
  setInterval(() => {
    if (document.visibilityState === "visible") api(incidentPath).then(show).catch(() => {});
  }, REFRESH_MS);
});

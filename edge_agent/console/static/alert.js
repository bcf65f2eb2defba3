// One alert: its snapshot with the boxes of its objects, facts, the timeline of phases, the verdict.
"use strict";

const eventId = decodeURIComponent(window.location.pathname.replace(/^\/alert\//, ""));

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
  ctx.font = Math.max(14, canvas.width / 60) + "px sans-serif";
  for (const o of objects) {
    const [x1, y1, x2, y2] = o.bbox;
    const x = x1 * canvas.width, y = y1 * canvas.height;
    ctx.strokeStyle = "#ffd400";
    ctx.strokeRect(x, y, (x2 - x1) * canvas.width, (y2 - y1) * canvas.height);
    ctx.fillStyle = "#ffd400";
    ctx.fillText(o.label + "#" + o.track_id + " " + o.score.toFixed(2), x + 3, Math.max(14, y - 4));
  }
  canvas.dataset.boxes = String(objects.length);
}

function showVerdict(inc) {
  const v = document.getElementById("verdict");
  v.textContent = inc.verdict ? inc.verdict.replace("_", " ") + " by " + inc.verdict_by + " at " +
    clock(inc.verdict_at) : "not reviewed";
  v.dataset.verdict = inc.verdict || "";
  const list = document.getElementById("verdicts");
  list.replaceChildren();
  for (const h of inc.verdicts || []) {
    list.append(el("li", {text: clock(h.at) + " " + h.by_user + ": " + h.verdict.replace("_", " ")}));
  }
}

async function mark(verdict) {
  const error = document.getElementById("verdict-error");
  error.hidden = true;
  try {
    await api("/api/incidents/" + encodeURIComponent(eventId) + "/verdict", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({verdict}),
    });
    showVerdict(await api("/api/incidents/" + encodeURIComponent(eventId)));
  } catch (err) {
    error.textContent = "could not save: " + err.message;
    error.hidden = false;
  }
}

async function load() {
  const inc = await api("/api/incidents/" + encodeURIComponent(eventId));
  document.getElementById("title").textContent = inc.rule + " at " + inc.site + " / " + inc.camera;
  const facts = document.getElementById("facts");
  const rows = [
    ["Village / device", inc.site + " / " + inc.device], ["Camera", inc.camera], ["Rule", inc.rule + " (" + inc.kind + ")"],
    ["Severity", inc.severity], ["Zone", inc.zone || "–"], ["Object", (inc.label || "–") +
      (inc.score !== null ? " " + inc.score.toFixed(2) : "")],
    ["Started", clock(inc.started_at)], ["Last phase", inc.last_phase + " at " + clock(inc.last_ts)],
    ["Ended", clock(inc.ended_at)], ["Duration", inc.duration_s.toFixed(1) + " s"], ["Event id", inc.event_id],
  ];
  facts.replaceChildren();
  for (const [k, v] of rows) facts.append(el("dt", {text: k}), el("dd", {text: v}));
  const timeline = document.getElementById("timeline");
  timeline.replaceChildren();
  for (const p of inc.timeline) {
    const objs = p.event.objects.map((o) => o.label + "#" + o.track_id).join(", ") || "no objects";
    timeline.append(el("li", {"data-phase": p.phase},
      el("strong", {text: p.phase}), " " + clock(p.ts) + " · " + p.event.duration_s.toFixed(1) + " s · " + objs));
  }
  showVerdict(inc);
  const note = document.getElementById("snapshot-note");
  const img = document.getElementById("snapshot");
  if (inc.snapshot && inc.snapshot.received) {
    const start = inc.timeline.find((p) => p.phase === "start");
    img.addEventListener("load", () => drawBoxes((start || inc.timeline[0]).event.objects));
    img.src = inc.snapshot_url;
    note.textContent = inc.snapshot.sha256_ok ? "snapshot checked: its sha256 is the one the event names"
      : "WARNING: this snapshot's sha256 is not the one the event names";
    note.className = inc.snapshot.sha256_ok ? "muted" : "error";
  } else {
    img.hidden = true;
    note.textContent = inc.snapshot_topic ? "the snapshot has not arrived" : "this event has no snapshot";
  }
  document.querySelector("main").dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", () => {
  showMe();
  document.getElementById("confirm").addEventListener("click", () => mark("confirmed"));
  document.getElementById("false-alarm").addEventListener("click", () => mark("false_alarm"));
  load();
});

// The zone drawing page: the camera frame on a canvas, shapes in relative (0..1) coordinates.
"use strict";

(function () {
  const HIT_PX = 10; // how close (CSS pixels) a pointer must be to grab a point
  const EDGE_PX = 7; // how close to an edge a click inserts a point there
  const DETECT_EVERY_MS = 3000;
  const COLOURS = {
    zone: "rgb(255,200,0)",
    line: "rgb(0,160,255)",
    mask: "rgb(160,160,160)",
    selected: "rgb(255,60,60)",
    detection: "rgb(60,220,60)",
  };

  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");

  const state = {
    camera: params.get("camera"),
    revision: null,
    shapes: [], // {kind: "zone"|"line"|"mask", name, points: [[x, y], ...]}
    sel: -1,
    selPoint: -1,
    drag: null,
    dirty: false,
    image: null,
    aspect: 9 / 16,
    detections: null,
    detectTimer: null,
  };

  function api(path, options) {
    const opts = options || {};
    opts.headers = Object.assign({}, opts.headers || {});
    if (token) opts.headers["X-Edge-Agent-Token"] = token;
    return fetch(path, opts);
  }

  function query(extra) {
    const q = new URLSearchParams({ camera: state.camera || "" });
    if (token) q.set("token", token);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return q.toString();
  }

  function setStatus(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.className = kind || "";
  }

  function showProblems(problems) {
    const ul = $("problems");
    ul.replaceChildren();
    for (const p of problems || []) {
      const li = document.createElement("li");
      li.textContent = p.path ? p.path + ": " + p.message : p.message;
      ul.appendChild(li);
    }
  }

  async function problemText(resp) {
    try {
      const body = await resp.json();
      return (body.problems || []).map((p) => (p.path ? p.path + ": " : "") + p.message).join("; ");
    } catch (err) {
      return resp.status + " " + resp.statusText;
    }
  }

  // --- loading ----------------------------------------------------------------------

  async function loadCameras() {
    const resp = await api("/api/cameras");
    if (!resp.ok) throw new Error(await problemText(resp));
    const body = await resp.json();
    if (!state.camera) state.camera = body["default"];
    const select = $("camera");
    select.replaceChildren();
    for (const id of body.cameras) {
      const opt = document.createElement("option");
      opt.value = opt.textContent = id;
      select.appendChild(opt);
    }
    select.value = state.camera;
  }

  async function loadConfig() {
    const resp = await api("/api/config?" + query());
    if (!resp.ok) throw new Error(await problemText(resp));
    const body = await resp.json();
    state.revision = body.revision;
    state.shapes = [];
    for (const [name, z] of Object.entries(body.zones)) state.shapes.push({ kind: "zone", name, points: z.polygon });
    for (const [name, l] of Object.entries(body.lines)) state.shapes.push({ kind: "line", name, points: l.points });
    for (const m of body.masks) state.shapes.push({ kind: "mask", name: "", points: m });
    state.sel = -1;
    state.selPoint = -1;
    state.dirty = false;
    showProblems([]);
    refreshPanel();
    draw();
  }

  function loadImage() {
    return new Promise((resolve) => {
      const img = new Image();
      img.onload = () => {
        state.image = img;
        state.aspect = img.naturalHeight / img.naturalWidth;
        fit();
        resolve(true);
      };
      img.onerror = async () => {
        state.image = null;
        const resp = await api("/api/snapshot.jpg?" + query()).catch(() => null);
        const why = resp ? await problemText(resp) : "the page server does not answer";
        setStatus("No camera image: " + why + " (you can still draw)", "error");
        fit();
        resolve(false);
      };
      img.src = "/api/snapshot.jpg?" + query({ t: Date.now() });
    });
  }

  async function loadAll() {
    canvas.dataset.ready = "0";
    try {
      await loadCameras();
      await loadConfig();
      await loadImage();
    } catch (err) {
      setStatus(String(err.message || err), "error");
    }
    canvas.dataset.ready = "1";
  }

  // --- drawing ------------------------------------------------------------------------

  function fit() {
    const wrap = $("view");
    let w = wrap.clientWidth;
    let h = w * state.aspect;
    const maxH = window.innerHeight - 24;
    if (h > maxH && maxH > 200) {
      h = maxH;
      w = h / state.aspect;
    }
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = Math.round(w) + "px";
    canvas.style.height = Math.round(h) + "px";
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    draw();
  }

  function px(p) {
    return [p[0] * canvas.width, p[1] * canvas.height];
  }

  function label(text, x, y, colour) {
    const dpr = window.devicePixelRatio || 1;
    ctx.font = Math.round(13 * dpr) + "px system-ui, sans-serif";
    const w = ctx.measureText(text).width;
    ctx.fillStyle = "rgba(0,0,0,0.7)";
    ctx.fillRect(x, y - 14 * dpr, w + 6 * dpr, 18 * dpr);
    ctx.fillStyle = colour;
    ctx.fillText(text, x + 3 * dpr, y);
  }

  function drawShape(shape, selected) {
    const dpr = window.devicePixelRatio || 1;
    const colour = selected ? COLOURS.selected : COLOURS[shape.kind];
    const pts = shape.points.map(px);
    if (pts.length === 0) return;
    ctx.lineWidth = (selected ? 3 : 2) * dpr;
    ctx.strokeStyle = colour;
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
    if (shape.kind !== "line") ctx.closePath();
    if (shape.kind === "mask") {
      ctx.fillStyle = "rgba(60,60,60,0.55)";
      ctx.fill();
    } else if (shape.kind === "zone") {
      ctx.fillStyle = selected ? "rgba(255,60,60,0.15)" : "rgba(255,200,0,0.12)";
      ctx.fill();
    }
    ctx.stroke();
    let text = shape.kind === "mask" ? "mask" : shape.name;
    ctx.font = Math.round(13 * dpr) + "px system-ui, sans-serif";
    if (shape.kind === "line" && pts.length === 2) {
      // the arrow points to the line's "in" side, as in `edge-agent snapshot`
      const [[ax, ay], [bx, by]] = pts;
      const len = Math.max(Math.hypot(bx - ax, by - ay), 1);
      const nx = -(by - ay) / len;
      const ny = (bx - ax) / len;
      const mx = (ax + bx) / 2;
      const my = (ay + by) / 2;
      const tip = [mx + nx * 25 * dpr, my + ny * 25 * dpr];
      const head = 8 * dpr;
      ctx.beginPath();
      ctx.moveTo(mx, my);
      ctx.lineTo(tip[0], tip[1]);
      ctx.moveTo(tip[0] - nx * head - ny * head * 0.6, tip[1] - ny * head + nx * head * 0.6);
      ctx.lineTo(tip[0], tip[1]);
      ctx.lineTo(tip[0] - nx * head + ny * head * 0.6, tip[1] - ny * head - nx * head * 0.6);
      ctx.stroke();
      // the label sits beyond the arrow's tip, on whichever side the arrow points
      const inText = shape.name + " (in)";
      const width = ctx.measureText(inText).width + 6 * dpr;
      const lx = tip[0] + nx * 4 * dpr - (nx < 0 ? width : 0);
      const ly = tip[1] + ny * 4 * dpr + (ny > 0 ? 14 * dpr : ny < 0 ? -2 * dpr : 5 * dpr);
      label(inText, lx, ly, colour);
      text = null;
    }
    if (text) {
      const minX = Math.min(...pts.map((p) => p[0]));
      const minY = Math.min(...pts.map((p) => p[1]));
      label(text, minX + 2 * dpr, minY + 16 * dpr, colour);
    }
    pts.forEach((p, i) => {
      const r = (selected ? 6 : 4) * dpr;
      ctx.beginPath();
      ctx.arc(p[0], p[1], r, 0, 2 * Math.PI);
      ctx.fillStyle = selected && i === state.selPoint ? "#fff" : colour;
      ctx.fill();
      if (selected) {
        ctx.lineWidth = 1 * dpr;
        ctx.strokeStyle = "#000";
        ctx.stroke();
      }
    });
  }

  function draw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (state.image) {
      ctx.drawImage(state.image, 0, 0, canvas.width, canvas.height);
    } else {
      ctx.fillStyle = "#333";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }
    state.shapes.forEach((s, i) => i !== state.sel && drawShape(s, false));
    if (state.sel >= 0) drawShape(state.shapes[state.sel], true);
    if (state.detections) {
      const dpr = window.devicePixelRatio || 1;
      ctx.lineWidth = 2 * dpr;
      ctx.strokeStyle = COLOURS.detection;
      for (const d of state.detections) {
        const [x1, y1] = px([d.box[0], d.box[1]]);
        const [x2, y2] = px([d.box[2], d.box[3]]);
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        label(d.label + " " + d.score.toFixed(2), x1, Math.max(y1 - 3 * dpr, 14 * dpr), COLOURS.detection);
      }
    }
  }

  // --- the panel ----------------------------------------------------------------------

  function nameTaken(kind, name, except) {
    return state.shapes.some((s, i) => i !== except && s.kind === kind && s.name === name);
  }

  function refreshPanel() {
    const ul = $("shapes");
    ul.replaceChildren();
    let masks = 0;
    state.shapes.forEach((s, i) => {
      const li = document.createElement("li");
      li.dataset.kind = s.kind;
      li.dataset.index = String(i);
      if (s.kind !== "mask") li.dataset.name = s.name;
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = s.kind;
      li.append(kind, s.kind === "mask" ? "mask " + ++masks : s.name, " (" + s.points.length + " points)");
      if (i === state.sel) li.classList.add("selected");
      li.addEventListener("click", () => select(i, -1));
      ul.appendChild(li);
    });
    const shape = state.shapes[state.sel];
    const name = $("name");
    name.disabled = !shape || shape.kind === "mask";
    if (document.activeElement !== name) name.value = shape && shape.kind !== "mask" ? shape.name : "";
    name.classList.toggle("invalid", !!shape && shape.kind !== "mask" && !validName(shape));
    $("delete-shape").disabled = !shape;
    $("delete-point").disabled = !shape || state.selPoint < 0;
  }

  function validName(shape) {
    return shape.name.trim() !== "" && shape.name === shape.name.trim() && !nameTaken(shape.kind, shape.name, state.shapes.indexOf(shape));
  }

  function select(i, point) {
    state.sel = i;
    state.selPoint = point;
    refreshPanel();
    draw();
  }

  function changed() {
    state.dirty = true;
    setStatus("Unsaved changes", "");
    refreshPanel();
    draw();
  }

  function newShape(kind) {
    let name = "";
    if (kind !== "mask") {
      let n = 1;
      while (nameTaken(kind, kind + "-" + n, -1)) n += 1;
      name = kind + "-" + n;
    }
    state.shapes.push({ kind, name, points: [] });
    select(state.shapes.length - 1, -1);
    setStatus("Click the image to add the points of the new " + kind, "");
    if (kind !== "mask") {
      $("name").focus();
      $("name").select();
    }
  }

  // --- pointer work -------------------------------------------------------------------

  function rel(ev) {
    const r = canvas.getBoundingClientRect();
    const clamp = (v) => Math.min(1, Math.max(0, v));
    return [clamp((ev.clientX - r.left) / r.width), clamp((ev.clientY - r.top) / r.height)];
  }

  function cssDist(a, b) {
    const r = canvas.getBoundingClientRect();
    return Math.hypot((a[0] - b[0]) * r.width, (a[1] - b[1]) * r.height);
  }

  function hitPoint(p) {
    // the nearest point in reach; the selected shape's points win where shapes share a corner
    let best = null;
    let bestD = Infinity;
    state.shapes.forEach((s, i) => {
      s.points.forEach((q, j) => {
        const d = cssDist(q, p) - (i === state.sel ? HIT_PX : 0);
        if (cssDist(q, p) <= HIT_PX && d < bestD) {
          best = [i, j];
          bestD = d;
        }
      });
    });
    return best;
  }

  function edgeDist(p, a, b) {
    const r = canvas.getBoundingClientRect();
    const [px1, py1, ax, ay, bx, by] = [p[0] * r.width, p[1] * r.height, a[0] * r.width, a[1] * r.height, b[0] * r.width, b[1] * r.height];
    const len2 = (bx - ax) ** 2 + (by - ay) ** 2;
    const t = len2 ? Math.max(0, Math.min(1, ((px1 - ax) * (bx - ax) + (py1 - ay) * (by - ay)) / len2)) : 0;
    return Math.hypot(px1 - (ax + t * (bx - ax)), py1 - (ay + t * (by - ay)));
  }

  function addPoint(p) {
    if (state.sel < 0) newShape("zone");
    const shape = state.shapes[state.sel];
    if (shape.kind === "line" && shape.points.length >= 2) {
      setStatus("A line has two points: drag them to move it, or press New line", "error");
      return;
    }
    const pts = shape.points;
    let at = pts.length;
    if (shape.kind !== "line" && pts.length >= 3) {
      for (let j = 0; j < pts.length; j++) {
        if (edgeDist(p, pts[j], pts[(j + 1) % pts.length]) <= EDGE_PX) {
          at = j + 1;
          break;
        }
      }
    }
    pts.splice(at, 0, [round4(p[0]), round4(p[1])]);
    state.selPoint = at;
    changed();
  }

  function round4(v) {
    return Math.round(v * 10000) / 10000;
  }

  function deletePoint(i, j) {
    if (i < 0 || j < 0) return;
    state.shapes[i].points.splice(j, 1);
    state.sel = i;
    state.selPoint = -1;
    changed();
  }

  canvas.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    ev.preventDefault();
    canvas.focus();
    const p = rel(ev);
    const hit = hitPoint(p);
    if (hit) {
      select(hit[0], hit[1]);
      state.drag = { shape: hit[0], point: hit[1], moved: false };
      canvas.setPointerCapture(ev.pointerId);
    } else {
      addPoint(p);
    }
  });

  canvas.addEventListener("pointermove", (ev) => {
    const p = rel(ev);
    if (!state.drag) {
      canvas.style.cursor = hitPoint(p) ? "move" : "crosshair";
      return;
    }
    const { shape, point } = state.drag;
    state.shapes[shape].points[point] = [round4(p[0]), round4(p[1])];
    state.drag.moved = true;
    draw();
  });

  function endDrag(ev) {
    if (!state.drag) return;
    if (canvas.hasPointerCapture(ev.pointerId)) canvas.releasePointerCapture(ev.pointerId);
    const moved = state.drag.moved;
    state.drag = null;
    if (moved) changed();
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);

  canvas.addEventListener("contextmenu", (ev) => {
    ev.preventDefault();
    const hit = hitPoint(rel(ev));
    if (hit) deletePoint(hit[0], hit[1]);
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement) return;
    if (ev.key === "Delete" || ev.key === "Backspace") {
      ev.preventDefault();
      deletePoint(state.sel, state.selPoint);
    } else if (ev.key === "Escape") {
      select(-1, -1);
    }
  });

  // --- buttons ------------------------------------------------------------------------

  $("new-zone").addEventListener("click", () => newShape("zone"));
  $("new-line").addEventListener("click", () => newShape("line"));
  $("new-mask").addEventListener("click", () => newShape("mask"));
  $("delete-point").addEventListener("click", () => deletePoint(state.sel, state.selPoint));
  $("delete-shape").addEventListener("click", () => {
    if (state.sel < 0) return;
    state.shapes.splice(state.sel, 1);
    state.sel = -1;
    state.selPoint = -1;
    changed();
  });

  $("name").addEventListener("input", (ev) => {
    const shape = state.shapes[state.sel];
    if (!shape || shape.kind === "mask") return;
    shape.name = ev.target.value;
    changed();
  });

  $("camera").addEventListener("change", async (ev) => {
    if (state.dirty && !confirm("Discard the unsaved changes of this camera?")) {
      ev.target.value = state.camera;
      return;
    }
    state.camera = ev.target.value;
    state.detections = null;
    await loadAll();
  });

  $("reload").addEventListener("click", async () => {
    if (state.dirty && !confirm("Discard the unsaved changes?")) return;
    setStatus("", "");
    await loadAll();
  });

  $("save").addEventListener("click", async () => {
    const bad = state.shapes.find((s) => s.kind !== "mask" && !validName(s));
    if (bad) {
      setStatus("Each zone and line needs its own name (" + bad.kind + " " + JSON.stringify(bad.name) + ")", "error");
      return;
    }
    const payload = { camera: state.camera, revision: state.revision, zones: {}, lines: {}, masks: [] };
    for (const s of state.shapes) {
      if (s.kind === "zone") payload.zones[s.name] = { polygon: s.points };
      else if (s.kind === "line") payload.lines[s.name] = { points: s.points };
      else payload.masks.push(s.points);
    }
    setStatus("Saving…", "");
    const resp = await api("/api/zones", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    const body = await resp.json().catch(() => ({}));
    if (resp.ok) {
      state.revision = body.revision;
      state.dirty = false;
      showProblems([]);
      setStatus(body.changed ? "Saved; the previous file is kept as .bak" : "Saved (nothing changed)", "ok");
    } else {
      showProblems(body.problems);
      setStatus("Not saved: the config would be invalid, nothing was written", "error");
      if (resp.status === 409) setStatus("Not saved: the file changed on disk; Reload to see it", "error");
    }
  });

  async function detectOnce() {
    const resp = await api("/api/detections?" + query());
    if (!resp.ok) {
      setStatus("Detections: " + (await problemText(resp)), "error");
      return;
    }
    const body = await resp.json();
    state.detections = body.detections;
    await loadImage();
    canvas.dataset.detections = String(body.detections.length);
    draw();
  }

  $("detections").addEventListener("change", async (ev) => {
    clearInterval(state.detectTimer);
    state.detectTimer = null;
    if (!ev.target.checked) {
      state.detections = null;
      delete canvas.dataset.detections;
      draw();
      return;
    }
    await detectOnce();
    if (ev.target.checked) state.detectTimer = setInterval(detectOnce, DETECT_EVERY_MS);
  });

  window.addEventListener("resize", fit);
  window.addEventListener("beforeunload", (ev) => {
    if (state.dirty) ev.preventDefault();
  });

  fit();
  loadAll();
})();

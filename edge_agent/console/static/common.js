// Shared by the console's pages: fetch JSON from the API, build elements, format times.
"use strict";

async function api(path, options) {
  const resp = await fetch(path, Object.assign({credentials: "same-origin"}, options || {}));
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || ("HTTP " + resp.status));
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
}

// "2026-11-26T08:15:32.400Z" -> "2026-11-26 08:15:32"
function clock(ts) {
  return ts ? ts.replace("T", " ").replace(/\.\d+Z$/, "").replace("Z", "") : "–";
}

async function showMe() {
  try {
    const me = await api("/api/me");
    document.getElementById("me").textContent = me.name;
  } catch (err) {
    document.getElementById("me").textContent = "";
  }
}

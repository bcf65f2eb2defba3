#!/usr/bin/env bash
# The town console for `make demo`, as functions for scripts/demo.sh to source:
#
#   . scripts/demo_console.sh
#   console_start "mqtt://127.0.0.1:$PORT" "$OUT"   # before the replay: SQLite in $OUT, a free port
#   ...replay...
#   console_wait_events "$(wc -l < "$OUT/events.jsonl")"
#   console_wait_clips "$OUT/events.jsonl"           # every clip the events name, stored and checked
#   console_show                                     # the URL; serves until Enter when interactive
#   console_stop                                     # (also safe to call from the EXIT trap)
#
# Needs BIN (the venv's bin directory) set by the caller. Run alone (`bash scripts/demo_console.sh
# mqtt://127.0.0.1:1883 out/console`) it starts a console on that broker and serves until Ctrl-C.

CONSOLE_PID=""
CONSOLE_URL=""
CONSOLE_DIR=""
: "${BIN:=.venv/bin}"

_console_get() {  # GET a console API path; prints the JSON, fails when not answering
  "$BIN/python" - "$CONSOLE_URL" "$1" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1].rstrip("/") + sys.argv[2], timeout=2) as r:
    print(r.read().decode())
EOF
}

console_start() {
  local broker_url=$1
  CONSOLE_DIR=$2
  mkdir -p "$CONSOLE_DIR"
  local port
  port=$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat > "$CONSOLE_DIR/console.yaml" <<EOF
version: 1
mqtt: {url: "$broker_url", client_id: demo-console}
database: {url: "sqlite:///$(realpath "$CONSOLE_DIR")/console.sqlite3"}
web: {bind: 127.0.0.1, port: $port}
EOF
  CONSOLE_URL="http://127.0.0.1:$port/"
  "$BIN/edge-agent" console --config "$CONSOLE_DIR/console.yaml" > "$CONSOLE_DIR/console.log" 2>&1 &
  CONSOLE_PID=$!
  for _ in $(seq 100); do
    if _console_get /api/status 2>/dev/null | "$BIN/python" -c \
      'import json,sys; sys.exit(0 if (json.load(sys.stdin).get("mqtt") or {}).get("subscribed") else 1)' 2>/dev/null; then
      echo "town console: $CONSOLE_URL (SQLite: $CONSOLE_DIR/console.sqlite3)"
      return 0
    fi
    kill -0 "$CONSOLE_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "the console did not start; its log:" >&2
  cat "$CONSOLE_DIR/console.log" >&2
  return 1
}

console_wait_events() {  # wait (up to 30 s) until the console has stored $1 event phases
  local want=$1 have=0
  for _ in $(seq 150); do
    have=$(_console_get /api/status 2>/dev/null | "$BIN/python" -c \
      'import json,sys; print(json.load(sys.stdin)["database"]["rows"]["events"])' 2>/dev/null || echo 0)
    [ "$have" -ge "$want" ] && break
    sleep 0.2
  done
  echo "town console: $have of $want event phases stored"
}

console_wait_clips() {  # wait (up to 30 s) until every clip named in the events file $1 is stored
  "$BIN/python" - "$CONSOLE_URL" "$1" <<'EOF'
import json, sys, time, urllib.request
url, events = sys.argv[1].rstrip("/"), sys.argv[2]
starts = [e for e in map(json.loads, open(events, encoding="utf-8")) if e["phase"] == "start" and "clip" in e]
missing = []
for e in starts:
    info = {}
    for _ in range(150):
        with urllib.request.urlopen(f"{url}/api/incidents/{e['event_id']}", timeout=2) as r:
            info = json.load(r)
        owner_there = not e.get("owner") or (info.get("owner_info") or {}).get("received")
        if (info.get("clip_info") or {}).get("complete") and owner_there:
            break
        time.sleep(0.2)
    clip, owner = info.get("clip_info") or {}, info.get("owner_info")
    if not clip.get("complete"):
        missing.append(e["event_id"])
        continue
    who = f", owner crop {'stored' if owner and owner['received'] else 'MISSING'}" if e.get("owner") else ""
    print(f"town console: clip of {e['rule']} stored ({clip['bytes']} bytes, {clip['duration_s']:.1f} s, "
          f"sha256 {'checked' if clip['sha256_ok'] else 'WRONG'}){who}: {url}/incident/{e['event_id']}")
if missing:
    sys.exit(f"town console: the clip of {', '.join(missing)} was not stored")
EOF
}

console_show() {
  local incidents
  incidents=$(_console_get /api/status | "$BIN/python" -c \
    'import json,sys; print(json.load(sys.stdin)["database"]["rows"]["incidents"])')
  echo
  echo "town console: $incidents alerts of the demo at $CONSOLE_URL (counts: ${CONSOLE_URL}counts, map: ${CONSOLE_URL}map)"
  if [ -t 0 ] && [ -t 1 ]; then
    echo "  open it in a browser; press Enter to stop"
    read -r _ || true
  fi
  # The URL above ends with the demo; the stored alerts stay, and this serves them again
  # (read-only, same port) for as long as it runs.
  echo "  to open the console again after the demo: $BIN/edge-agent console --config $CONSOLE_DIR/console.yaml --no-mqtt"
}

console_stop() {
  if [ -n "$CONSOLE_PID" ]; then
    kill "$CONSOLE_PID" 2>/dev/null || true
    wait "$CONSOLE_PID" 2>/dev/null || true
    CONSOLE_PID=""
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  trap console_stop EXIT
  console_start "${1:-mqtt://127.0.0.1:1883}" "${2:-out/console}"
  echo "serving until Ctrl-C"
  wait "$CONSOLE_PID"
fi

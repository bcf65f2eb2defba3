#!/usr/bin/env bash
# `make demo`: a local Mosquitto on a free loopback port, a fixture replayed through the whole
# pipeline with --publish, and the alerts shown as the platform receives them (`edge-agent listen`).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=out/demo
BIN=.venv/bin
. scripts/demo_console.sh
rm -rf "$OUT" && mkdir -p "$OUT"

PORT=$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
  echo "listener $PORT 127.0.0.1"
  echo "allow_anonymous true"
  echo "persistence false"
  [ "$(id -u)" = 0 ] && echo "user root"
} > "$OUT/mosquitto.conf"
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$MOSQUITTO" -c "$OUT/mosquitto.conf" > "$OUT/mosquitto.log" 2>&1 &
BROKER=$!
LISTENER=""
cleanup() {
  console_stop
  [ -n "$LISTENER" ] && kill "$LISTENER" 2>/dev/null || true
  kill "$BROKER" 2>/dev/null || true
}
trap cleanup EXIT

# the demo's rules, publishing to the local broker
cp rules/demo.yaml "$OUT/config.yaml"
echo "mqtt: {url: 'mqtt://127.0.0.1:$PORT', topic_prefix: eagleeye}" >> "$OUT/config.yaml"

for _ in $(seq 50); do
  "$BIN/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
  sleep 0.1
done
echo "broker: mqtt://127.0.0.1:$PORT (Mosquitto)"
console_start "mqtt://127.0.0.1:$PORT" "$OUT/console"
echo "platform view (edge-agent listen), one line per event as it arrives:"
echo
"$BIN/edge-agent" listen --url "mqtt://127.0.0.1:$PORT" --snapshots "$OUT/received" &
LISTENER=$!
sleep 1

# One box, three cameras: illegal dumping, a street vendor, then people on a village lane.
for cam in dump-corner market-street lane; do
  clip=$(CAM="$cam" "$BIN/python" -c 'import os, yaml; c = yaml.safe_load(open("rules/demo.yaml"))
print(next(x["url"] for x in c["cameras"] if x["id"] == os.environ["CAM"]))')
  annotate=()
  [ "$cam" = lane ] && annotate=(--annotate "$OUT/annotated.mp4")
  "$BIN/edge-agent" replay "$clip" --config "$OUT/config.yaml" --camera "$cam" --publish --quiet \
    --events "$OUT/events-$cam.jsonl" --evidence "$OUT/evidence" "${annotate[@]}" 2> "$OUT/replay-$cam.log" \
    || { cat "$OUT/replay-$cam.log" >&2; exit 1; }
done
cat "$OUT"/events-dump-corner.jsonl "$OUT"/events-market-street.jsonl "$OUT"/events-lane.jsonl > "$OUT/events.jsonl"
sleep 1
kill "$LISTENER" 2>/dev/null || true
wait "$LISTENER" 2>/dev/null || true
LISTENER=""
echo
echo "events (replay):      $OUT/events.jsonl ($(wc -l < "$OUT/events.jsonl") lines)"
echo "snapshots (received): $OUT/received/ ($(find "$OUT/received" -name '*.jpg' 2>/dev/null | wc -l) files)"
echo "clips (received):     $OUT/received/ ($(find "$OUT/received" -name '*.mp4' 2>/dev/null | wc -l) files)"
echo "evidence (local):     $OUT/evidence/"
echo "annotated video:      $OUT/annotated.mp4"
console_wait_events "$(wc -l < "$OUT/events.jsonl")"
console_wait_clips "$OUT/events.jsonl"
console_show

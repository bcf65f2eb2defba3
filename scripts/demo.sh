#!/usr/bin/env bash
# `make demo`: replay a fixture through the whole pipeline and show the alerts.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=out/demo
rm -rf "$OUT" && mkdir -p "$OUT"
.venv/bin/edge-agent replay fixtures/walkway-b.mp4 --config rules/demo.yaml \
  --events "$OUT/events.jsonl" --evidence "$OUT/evidence" --annotate "$OUT/annotated.mp4"
echo
echo "events:          $OUT/events.jsonl"
echo "snapshots:       $OUT/evidence/"
echo "annotated video: $OUT/annotated.mp4"

"""Alert accuracy per fixture clip and rule, from the golden files (no model run needed).

Run from the repository root: `python -m bench.bench_accuracy` (prints a Markdown section).
The golden files are what the real model gives on each clip (tests/test_scenarios.py checks
them byte for byte); the truth is the table in fixtures/scenarios/README.md, and each left
object's box is where fixtures/make_scenarios.py pasted it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "fixtures" / "scenarios"
sys.path.insert(0, str(REPO / "fixtures"))

ALERT_SLACK_S = 5.0


def _truth() -> list[tuple[str, str, str, int, float | None]]:
    rows = []
    for line in (SCENARIOS / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or cells[0] in ("clip", "") or set(cells[0]) <= {"-"}:
            continue
        rows.append(
            (cells[0], cells[1], cells[2], int(cells[3]), None if cells[5] == "-" else float(cells[5]))
        )
    return rows


def _wait(config: str, rule_id: str) -> float:
    cfg = yaml.safe_load((SCENARIOS / config).read_text())
    rule = next(r for r in cfg["cameras"][0]["rules"] if r["id"] == rule_id)
    return float(rule.get("min_static_s", rule.get("min_dwell_s", 0.0)))


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def run() -> str:
    from make_scenarios import H, W, truth_boxes

    boxes = truth_boxes()
    lines = [
        "## Alert accuracy",
        "",
        "Per staged clip and rule, from the golden event files (the real yolox-nano model on each",
        "clip; `tests/test_scenarios.py` keeps them exact) against the ground truth in",
        "`fixtures/scenarios/README.md`. *found* are incidents that match a true one, *false* the",
        "rest; *in time* means the alert came within the rule's wait + 5 s of the incident's start.",
        "*box IoU* compares the start event's box with where `make_scenarios.py` pasted the object.",
        "No timing is measured here, so the shared machine's load does not matter.",
        "",
        "| clip | rule | expected | found | false | time to alert (s) | wait (s) | in time | box IoU |",
        "|------|------|---------:|------:|------:|------------------:|---------:|:-------:|--------:|",
    ]
    tot_exp = tot_found = tot_false = tot_late = 0
    ious: list[float] = []
    for clip, config, rule, expected, from_s in _truth():
        path = SCENARIOS / f"{clip}.events.jsonl"
        events = [json.loads(x) for x in path.read_text().splitlines()]
        starts = [e for e in events if e["rule"] == rule and e["phase"] == "start"]
        found = min(len(starts), expected)
        false = len(starts) - found
        wait = _wait(config, rule)
        delays = [e["media_s"] - from_s for e in starts[:found]] if from_s is not None else []
        late = sum(1 for d in delays if not 0.0 <= d <= wait + ALERT_SLACK_S)
        clip_ious = []
        if clip in boxes:
            for e in starts[:found]:
                x1, y1, x2, y2 = e["objects"][0]["bbox"]
                clip_ious.append(_iou((x1 * W, y1 * H, x2 * W, y2 * H), boxes[clip]))
        ious.extend(clip_ious)
        tot_exp, tot_found, tot_false, tot_late = (
            tot_exp + expected,
            tot_found + found,
            tot_false + false,
            tot_late + late,
        )
        in_time = "-" if not delays else ("yes" if late == 0 else "no")
        lines.append(
            f"| {clip} | {rule} | {expected} | {found} | {false} | "
            f"{', '.join(f'{d:.1f}' for d in delays) or '-'} | {wait:.0f} | {in_time} | "
            f"{', '.join(f'{v:.2f}' for v in clip_ious) or '-'} |"
        )
    mean_iou = f"{sum(ious) / len(ious):.2f} (mean)" if ious else "-"
    lines.append(
        f"| **total** | | {tot_exp} | {tot_found} | {tot_false} | | | "
        f"{tot_found - tot_late}/{tot_found} | {mean_iou} |"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(run())

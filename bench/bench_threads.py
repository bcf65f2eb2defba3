"""onnxruntime settings for the detection workers: threads, spinning, sessions, batches.

Three measurements on YOLOX-Nano with real frames (walkway-a), each repeated in
interleaved rounds so that a neighbour's load lands on every variant alike:

1. intra-op threads 1 vs 2, spinning on vs off: wall ms and process CPU ms per
   inference, alone and with the box loaded (a second process running the
   same model in a loop on one thread, as a second worker or a camera would);
2. two threads calling inference at once: one session each vs one shared session
   (1 intra-op thread), inferences per second and CPU per inference;
3. batch 1 vs 2 vs 4 on a copy of the model whose batch dimension is re-declared
   symbolic (`dynamic_batch`), per-frame wall and CPU ms at 1 intra-op thread.

    python bench/bench_threads.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edge_agent.core.config import ModelConfig  # noqa: E402
from edge_agent.pipeline.detect.models import resolve_model  # noqa: E402
from edge_agent.pipeline.detect.onnx import OnnxDetector  # noqa: E402

CLIP = REPO / "fixtures" / "walkway-a.mp4"
ROUNDS = int(os.environ.get("EDGE_AGENT_BENCH_THREAD_ROUNDS", "5"))
PER_ROUND = int(os.environ.get("EDGE_AGENT_BENCH_THREAD_RUNS", "30"))

_COMPETITOR = """
import sys, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).uniform(0, 255, (1, 3, 416, 416)).astype(np.float32)
name = s.get_inputs()[0].name
while True:
    s.run(None, {name: x})
"""


def dynamic_batch(src: Path, dst: Path) -> Path:
    """A copy of a YOLOX ONNX file whose batch dimension is symbolic (`batch`).

    The exported graph declares batch 1 on its input and output and bakes it into
    the three head Reshapes (`[1, 85, -1]`); 0 there means "copy the input's
    dimension", and the stale intermediate shapes are dropped for onnxruntime
    to infer again.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    inits = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[1] in inits:
            init = inits[node.input[1]]
            shape = numpy_helper.to_array(init).copy()
            if shape.size and shape[0] == 1:
                shape[0] = 0
                init.CopyFrom(numpy_helper.from_array(shape, init.name))
    del graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    out = []
    while len(out) < n:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out


def session(path: Path, threads: int, spinning: bool = True) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def timed(fn: Callable[[], None], n: int) -> tuple[float, float]:
    """(wall ms, process CPU ms) per call of `fn`, over n calls."""
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) * 1e3 / n, (time.process_time() - c0) * 1e3 / n


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def thread_settings(path: Path, tensor: np.ndarray) -> list[str]:
    variants = {
        "1 thread": session(path, 1),
        "2 threads, spinning on (onnxruntime's default)": session(path, 2, True),
        "2 threads, spinning off": session(path, 2, False),
    }
    name = next(iter(variants.values())).get_inputs()[0].name
    for s in variants.values():
        s.run(None, {name: tensor})
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {
        (v, ld): [] for v in variants for ld in (False, True)
    }
    for loaded in (False, True):
        competitor = None
        if loaded:
            competitor = subprocess.Popen([sys.executable, "-c", _COMPETITOR, str(path)])
            time.sleep(1.5)
        try:
            for r in range(ROUNDS):
                order = list(variants.items())
                if r % 2:
                    order.reverse()
                for label, s in order:
                    results[(label, loaded)].append(
                        timed(lambda s=s: s.run(None, {name: tensor}), PER_ROUND)  # type: ignore[misc]
                    )
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    lines = [
        "| setting | alone: wall ms | alone: CPU ms | loaded: wall ms | loaded: CPU ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for label in variants:
        alone, busy = results[(label, False)], results[(label, True)]
        lines.append(
            f"| {label} | {spread([w for w, _ in alone])} | {spread([c for _, c in alone])} "
            f"| {spread([w for w, _ in busy])} | {spread([c for _, c in busy])} |"
        )
    return lines


def concurrency(path: Path, tensor: np.ndarray) -> list[str]:
    """Two threads calling inference at once: own sessions vs one shared session."""
    own = [session(path, 1), session(path, 1)]
    shared = session(path, 1)
    name = shared.get_inputs()[0].name
    for s in (*own, shared):
        s.run(None, {name: tensor})

    def pair(sessions: list[ort.InferenceSession]) -> tuple[float, float]:
        def loop(s: ort.InferenceSession) -> None:
            for _ in range(PER_ROUND):
                s.run(None, {name: tensor})

        threads = [threading.Thread(target=loop, args=(s,)) for s in sessions]
        c0, t0 = time.process_time(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        done = PER_ROUND * len(sessions)
        return done / wall, cpu * 1e3 / done

    variants: dict[str, Callable[[], tuple[float, float]]] = {
        "1 thread, 1 session (one worker)": lambda: pair([shared]),
        "2 threads, a session each": lambda: pair(own),
        "2 threads, one shared session": lambda: pair([shared, shared]),
    }
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for r in range(ROUNDS):
        order = list(variants.items())
        if r % 2:
            order.reverse()
        for label, fn in order:
            results[label].append(fn())
    lines = ["| callers | inferences/s | CPU ms per inference |", "|---|---:|---:|"]
    for label, res in results.items():
        lines.append(f"| {label} | {spread([x for x, _ in res])} | {spread([c for _, c in res])} |")
    return lines


def batching(path: Path, tensors: list[np.ndarray]) -> tuple[list[str], dict[int, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        dyn = dynamic_batch(path, Path(tmp) / "dyn.onnx")
        s = session(dyn, 1)
        name = s.get_inputs()[0].name
        ref = session(path, 1).run(None, {name: tensors[0]})[0]
        check = s.run(None, {name: np.concatenate(tensors[:2])})[0]
        same = bool(np.allclose(check[:1], ref, atol=1e-3))
        batches = {b: np.concatenate(tensors[:b]) for b in (1, 2, 4)}
        for x in batches.values():
            s.run(None, {name: x})
        results: dict[int, list[tuple[float, float]]] = {b: [] for b in batches}
        for r in range(ROUNDS):
            order = list(batches.items())
            if r % 2:
                order.reverse()
            for b, x in order:
                wall, cpu = timed(lambda x=x: s.run(None, {name: x}), max(4, PER_ROUND // b))  # type: ignore[misc]
                results[b].append((wall / b, cpu / b))
    per_frame = {b: statistics.median(w for w, _ in res) for b, res in results.items()}
    lines = [
        f"Batch outputs equal batch-1 outputs: {'yes' if same else 'NO'}.",
        "",
        "| batch | wall ms per frame | CPU ms per frame | vs batch 1 |",
        "|---|---:|---:|---:|",
    ]
    for b, res in results.items():
        lines.append(
            f"| {b} | {spread([w for w, _ in res])} | {spread([c for _, c in res])} "
            f"| {per_frame[b] / per_frame[1]:.2f} |"
        )
    return lines, per_frame


def run() -> str:
    cfg = ModelConfig(name="yolox-nano", threads=1)
    model = resolve_model(cfg)
    detector = OnnxDetector(model, cfg)
    imgs = frames(4)
    tensors = [detector.preprocess(img)[0] for img in imgs]
    uptime = os.getloadavg()
    t_lines = thread_settings(model.path, tensors[0])
    c_lines = concurrency(model.path, tensors[0])
    b_lines, per_frame = batching(model.path, tensors)
    best = min(per_frame, key=lambda b: per_frame[b])
    pays = per_frame[best] <= 0.9 * per_frame[1]
    return "\n".join(
        [
            "## Detector threads, sessions and batches",
            "",
            f"YOLOX-Nano 416x416, walkway-a frames, onnxruntime {ort.__version__};"
            f" {ROUNDS} interleaved rounds of {PER_ROUND} inferences each, median (min–max) over the rounds."
            " Load average at the start:"
            f" {uptime[0]:.2f} {uptime[1]:.2f} {uptime[2]:.2f} (the box is shared). CPU ms is the process's"
            " CPU time per inference: threads that spin while waiting count in it. Loaded: a second process"
            " runs the same model on one thread in a loop, as a second worker would.",
            "",
            *t_lines,
            "",
            "Two callers at once, 1 intra-op thread each (the detection workers):",
            "",
            *c_lines,
            "",
            "Batched inference on the model with a symbolic batch dimension (`dynamic_batch`,"
            " docs/models.md), 1 intra-op thread:",
            "",
            *b_lines,
            "",
            f"- Batching {'pays' if pays else 'does not pay'} here: the best per-frame cost is batch {best},"
            f" {per_frame[best] / per_frame[1]:.2f}× batch 1 (the workers batch only when it is ≤ 0.9×).",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())

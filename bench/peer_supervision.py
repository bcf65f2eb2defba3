"""The peer pipeline a user would write with Roboflow supervision instead of edge-agent.

Runs in the benchmark's scratch venv (supervision, onnxruntime, OpenCV, NumPy from PyPI),
never imports edge_agent: decode every frame, every 2nd one (5 of 10 fps) letterboxed
as the YOLOX demo does, one `session.run`, YOLOX grid decode, supervision's NMS,
`sv.ByteTrack`, two `sv.PolygonZone`s (path, lawn) and one `sv.LineZone` (the walkway
config's zones and line). Prints one JSON line: frames read, analysed, seconds and CPU
seconds (model load excluded).

    python peer_supervision.py MODEL CLIP THREADS
"""

from __future__ import annotations

import json
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv

PATH = [[0.0, 0.33], [0.5, 0.36], [0.85, 0.17], [1.0, 0.17], [1.0, 0.85], [0.55, 0.62], [0.3, 0.48], [0.0, 0.44]]  # fmt: skip  # noqa: E501
LAWN = [[0.0, 0.46], [0.3, 0.5], [0.55, 0.64], [1.0, 0.87], [1.0, 1.0], [0.0, 1.0]]
SIZE = 416


def preprocess(img: np.ndarray) -> tuple[np.ndarray, float]:
    padded = np.full((SIZE, SIZE, 3), 114, dtype=np.uint8)
    r = min(SIZE / img.shape[0], SIZE / img.shape[1])
    resized = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)), interpolation=cv2.INTER_LINEAR)
    padded[: resized.shape[0], : resized.shape[1]] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32), r


def grids() -> tuple[np.ndarray, np.ndarray]:
    g, s = [], []
    for stride in (8, 16, 32):
        n = SIZE // stride
        xv, yv = np.meshgrid(np.arange(n), np.arange(n))
        g.append(np.stack((xv, yv), 2).reshape(-1, 2))
        s.append(np.full((n * n, 1), stride))
    return np.concatenate(g).astype(np.float32), np.concatenate(s).astype(np.float32)


def main() -> None:
    model, clip, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    grid, stride = grids()
    cap = cv2.VideoCapture(clip)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    scale = np.array([w, h])
    tracker = sv.ByteTrack(frame_rate=5)
    zones = [sv.PolygonZone(polygon=(np.array(p) * scale).astype(int)) for p in (PATH, LAWN)]
    line = sv.LineZone(start=sv.Point(0.5 * w, 0.25 * h), end=sv.Point(0.5 * w, 0.75 * h))
    frames = analysed = 0
    c0, t0 = time.process_time(), time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames += 1
        if (frames - 1) % 2:
            continue
        analysed += 1
        tensor, r = preprocess(frame)
        out = session.run(None, {name: tensor})[0][0]
        xy = (out[:, :2] + grid) * stride
        wh = np.exp(out[:, 2:4]) * stride
        scores = out[:, 4:5] * out[:, 5:]
        class_id = scores.argmax(1)
        conf = scores[np.arange(len(scores)), class_id]
        keep = conf >= 0.35
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)[keep] / r
        dets = sv.Detections(xyxy=boxes, confidence=conf[keep], class_id=class_id[keep])
        dets = dets.with_nms(threshold=0.45, class_agnostic=False)
        dets = tracker.update_with_detections(dets)
        for zone in zones:
            zone.trigger(dets)
        line.trigger(dets)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    cap.release()
    print(json.dumps({"frames": frames, "analysed": analysed, "seconds": seconds, "cpu_s": cpu}))


if __name__ == "__main__":
    main()

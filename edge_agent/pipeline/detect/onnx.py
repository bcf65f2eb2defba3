"""The ONNX object detector: letterbox, one onnxruntime call, decode, class-aware NMS.

One `OnnxDetector` serves every camera and is called from every detection
worker at once: onnxruntime's `run` is thread-safe, and the letterbox, decode
and NMS keep no state. `last_timing` describes the latest call of any thread.

Threads: `model.threads` intra-op threads per call (1 by default: each worker
is one core's worth; more threads per call cost more CPU per inference and ran
slower on a busy box, see bench/REPORT.md), and spinning off, so a pool thread
waiting for work sleeps instead of burning a core another worker or camera needs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge_agent.core.config import ModelConfig
from edge_agent.core.geometry import Letterbox, letterbox_tensor
from edge_agent.core.types import Detections
from edge_agent.pipeline.detect.decoders import class_count, decode, nms
from edge_agent.pipeline.detect.models import ModelError, ResolvedModel, one_line, resolve_model

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True)
class DetectorTiming:
    """Where the time of one `detect()` call went, in milliseconds."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


@dataclass(frozen=True)
class ModelInput:
    """One frame made ready for the model (`OnnxDetector.prepare`)."""

    tensor: npt.NDArray[np.float32]
    box: Letterbox
    frame_width: int
    frame_height: int
    preprocess_ms: float


def select_providers(requested: list[str], available: list[str]) -> list[str]:
    """The requested providers that this onnxruntime build has, CPU always last.

    A missing accelerator (TensorRT or CUDA on a box without them) is not an
    error: the agent still runs on the CPU, and says so once in the log.
    """
    missing = [p for p in requested if p not in available]
    if missing:
        logger.warning(
            "execution providers %s are not available here (available: %s); using the rest and the CPU",
            ", ".join(missing),
            ", ".join(available),
        )
    chosen = [p for p in requested if p in available and p != CPU_PROVIDER]
    return [*chosen, CPU_PROVIDER]


class OnnxDetector:
    """A YOLO-family ONNX model behind `detect(image_bgr) -> Detections` in frame pixels."""

    def __init__(self, model: ResolvedModel, cfg: ModelConfig) -> None:
        self.model = model
        self.labels: tuple[str, ...] = model.labels
        self.decoder = model.decoder
        self.input_width, self.input_height = model.input_width, model.input_height
        self.min_score = cfg.min_score
        self.nms_iou = cfg.nms_iou
        self._rgb = model.input_channels == "rgb"
        self._unit_range = model.input_range == "0-1"

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = cfg.threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        providers = select_providers(list(cfg.providers), ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(model.path), opts, providers=providers)
        except Exception as err:
            raise ModelError(f"cannot load the ONNX model {model.path}: {one_line(err)}") from err
        self.providers: list[str] = self.session.get_providers()
        self.input_name: str = self.session.get_inputs()[0].name
        self._output_names = [self.session.get_outputs()[0].name]

        # Warm-up: the first run allocates and picks kernels (seconds on TensorRT);
        # it also gives the real output shape to check against the decoder and labels.
        tensor, _ = self.preprocess(
            np.full((self.input_height, self.input_width, 3), model.letterbox_pad, np.uint8)
        )
        try:
            out = self._infer(tensor)
        except Exception as err:
            raise ModelError(f"cannot run the ONNX model {model.path}: {one_line(err)}") from err
        try:
            num_classes = class_count(self.decoder, out.shape, self.input_width, self.input_height)
        except ValueError as err:
            raise ModelError(f"cannot use the ONNX model {model.path}: {err}") from err
        if num_classes != len(self.labels):
            raise ModelError(
                f"the ONNX model {model.path} has {num_classes} classes but {len(self.labels)} labels"
            )
        self.last_timing = DetectorTiming()
        logger.info(
            "detector %s: %s decoder, input %dx%d, %d classes, providers %s",
            model.name,
            self.decoder,
            self.input_width,
            self.input_height,
            num_classes,
            ", ".join(self.providers),
        )

    def preprocess(self, image_bgr: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float32], Letterbox]:
        """The model's input tensor (1, 3, H, W) float32 for one BGR frame, and how it was fitted."""
        tensor, box = letterbox_tensor(
            image_bgr, self.input_width, self.input_height, self.model.letterbox_pad, self._rgb
        )
        if self._unit_range:
            tensor *= np.float32(1 / 255)
        return tensor, box

    def _infer(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        return np.asarray(self.session.run(self._output_names, {self.input_name: tensor})[0])

    def prepare(self, image_bgr: npt.NDArray[np.uint8]) -> ModelInput:
        """The first half of `detect`: the model's input for one BGR frame (no model call)."""
        t0 = time.perf_counter()
        tensor, box = self.preprocess(image_bgr)
        frame_h, frame_w = image_bgr.shape[:2]
        return ModelInput(tensor, box, frame_w, frame_h, (time.perf_counter() - t0) * 1e3)

    def detect_prepared(self, prepared: object) -> Detections:
        """The second half of `detect`: the model on an input `prepare` made, decoded to frame pixels."""
        if not isinstance(prepared, ModelInput):
            raise TypeError(f"detect_prepared takes what prepare returns, not {type(prepared).__name__}")
        t1 = time.perf_counter()
        out = self._infer(prepared.tensor)
        t2 = time.perf_counter()
        boxes, scores, class_ids = decode(
            self.decoder, out, self.input_width, self.input_height, self.min_score
        )
        keep = nms(boxes, scores, class_ids, self.nms_iou)
        xyxy = prepared.box.to_frame(boxes[keep], prepared.frame_width, prepared.frame_height)
        # Boxes wholly in the letterbox padding clip to nothing: drop them.
        visible = np.logical_and.reduce(xyxy[:, 2:] > xyxy[:, :2], axis=1)
        keep = keep[visible]
        dets = Detections(xyxy[visible], scores[keep], class_ids[keep])
        t3 = time.perf_counter()
        self.last_timing = DetectorTiming(
            preprocess_ms=prepared.preprocess_ms, inference_ms=(t2 - t1) * 1e3, postprocess_ms=(t3 - t2) * 1e3
        )
        return dets

    def detect(self, image_bgr: npt.NDArray[np.uint8]) -> Detections:
        """Objects in one BGR frame: boxes in frame pixels (clipped), highest score first."""
        return self.detect_prepared(self.prepare(image_bgr))


def load_detector(cfg: ModelConfig) -> OnnxDetector:
    """The detector for the `model:` section of a config; ModelError with a one-line fix if it cannot be."""
    return OnnxDetector(resolve_model(cfg), cfg)

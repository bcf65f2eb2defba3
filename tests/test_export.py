"""`models export`: what works without Ultralytics — the manifest for an exported file, and the error.

The exported file is stood in for by a tiny ONNX graph with the YOLOv8 output
layout `[1, 4 + nc, N]` (one strided Conv and a Reshape), which the agent must
load by name through the written manifest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_agent.core.config import ModelConfig
from edge_agent.pipeline.detect.models import ModelError, load_manifest, sha256_of
from edge_agent.pipeline.detect.onnx import load_detector
from edge_agent.tools import export

onnx = pytest.importorskip("onnx")

SIZE = 64
STRIDE = 8


def _yolov8_like(path: Path, num_classes: int) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    channels = 4 + num_classes
    cells = (SIZE // STRIDE) ** 2
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(
        rng.normal(0, 0.01, (channels, 3, STRIDE, STRIDE)).astype(np.float32), "w"
    )
    shape = numpy_helper.from_array(np.array([1, channels, cells], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["images", "w"], ["features"], strides=[STRIDE, STRIDE]),
            helper.make_node("Reshape", ["features", "shape"], ["output0"]),
        ],
        "yolov8-like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, channels, cells])],
        initializer=[weight, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


def test_manifest_for_an_exported_file_loads_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx_path = _yolov8_like(tmp_path / "pallets.onnx", 2)
    manifest_path = export.write_export_manifest(
        onnx_path, {0: "pallet", 1: "forklift"}, name="pallets", source="pallets.pt", directory=tmp_path
    )
    assert manifest_path == tmp_path / "pallets.yaml"
    assert manifest_path.read_text().startswith("# Made by `edge-agent models export`")
    manifest = load_manifest("pallets", directory=tmp_path)
    assert manifest.file == "pallets.onnx"
    assert manifest.sha256 == sha256_of(onnx_path)
    assert manifest.decoder == "yolov8"
    assert manifest.labels == ("pallet", "forklift")
    assert (manifest.input_width, manifest.input_height) == (SIZE, SIZE)
    assert (manifest.input_channels, manifest.input_range) == ("rgb", "0-1")

    monkeypatch.setenv("EDGE_AGENT_MANIFEST_DIR", str(tmp_path))
    monkeypatch.setenv("EDGE_AGENT_MODEL_DIR", str(tmp_path))
    detector = load_detector(ModelConfig(name="pallets", min_score=0.99))
    assert detector.labels == ("pallet", "forklift")
    assert detector.decoder == "yolov8"
    assert len(detector.detect(np.zeros((120, 160, 3), np.uint8))) == 0


def test_manifest_refuses_names_that_do_not_fit_the_output(tmp_path: Path) -> None:
    onnx_path = _yolov8_like(tmp_path / "three.onnx", 3)
    with pytest.raises(ModelError, match="3 classes but the weights name 2"):
        export.write_export_manifest(onnx_path, ["a", "b"], name="three", source="x", directory=tmp_path)
    assert not (tmp_path / "three.yaml").exists()


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({0: "person", 1: "car"}, ("person", "car")),
        ({1: "car", 0: "person"}, ("person", "car")),
        (["person", "car"], ("person", "car")),
    ],
)
def test_labels_from_names(names: dict[int, str] | list[str], expected: tuple[str, ...]) -> None:
    assert export.labels_from_names(names) == expected


def test_labels_from_names_with_a_gap() -> None:
    with pytest.raises(ModelError, match=r"run 0\.\.1"):
        export.labels_from_names({0: "person", 2: "car"})


def test_export_without_ultralytics_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # None in sys.modules makes `import ultralytics` raise ImportError, installed or not.
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"")
    with pytest.raises(ModelError, match=r"pip install 'edge-agent\[export\]'"):
        export.export_model(weights)

    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    args = parser.parse_args([str(weights), "--imgsz", "320"])
    assert (args.imgsz, args.name) == (320, None)
    assert export.run(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'edge-agent[export]'" in err

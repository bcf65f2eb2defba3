"""The golden snapshot comparison: an encoder change passes, a picture that shows something else fails."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.app.config import parse_config
from edge_agent.core.types import EventObject
from edge_agent.pipeline.evidence import render_snapshot
from tests.conftest import FIXTURES
from tests.golden import compare_picture, small_grey, without_encoder_bytes


def frame(index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(FIXTURES / "walkway-a.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, img = cap.read()
    cap.release()
    assert ok
    return np.asarray(img)


CAM = parse_config((FIXTURES / "walkway.yaml").read_text()).cameras[0]
PERSON = EventObject(7, "person", 0.81, (380.0, 170.0, 420.0, 260.0), (768, 576))


def snapshot(image: np.ndarray, caption: str = "crossing-in (line_cross) t=9.4s") -> np.ndarray:
    return render_snapshot(image, CAM, [PERSON], None, "mid", caption)


def jpeg(img: np.ndarray, *params: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, list(params) or [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR))


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return small_grey(jpeg(snapshot(frame(94))))


@pytest.mark.parametrize(
    "params",
    [
        (cv2.IMWRITE_JPEG_QUALITY, 60),
        (cv2.IMWRITE_JPEG_QUALITY, 95),
        (cv2.IMWRITE_JPEG_QUALITY, 85, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        (
            cv2.IMWRITE_JPEG_QUALITY,
            85,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ),
    ],
)
def test_another_jpeg_encoding_of_the_same_picture_passes(reference: np.ndarray, params: tuple[int]) -> None:
    assert compare_picture(jpeg(snapshot(frame(94)), *params), reference).ok


def test_other_letters_in_a_label_pass(reference: np.ndarray) -> None:
    # what another font renderer does: the same label, other glyphs and width
    assert compare_picture(jpeg(snapshot(frame(94), "CROSSING-IN (LINE_CROSS) T=9.40S")), reference).ok


def test_an_extra_box_fails(reference: np.ndarray) -> None:
    img = snapshot(frame(94))
    cv2.rectangle(img, (560, 300), (600, 400), (40, 220, 60), 2)
    assert not compare_picture(jpeg(img), reference).ok


def test_a_box_in_another_place_fails(reference: np.ndarray) -> None:
    moved = EventObject(7, "person", 0.81, (200.0, 300.0, 240.0, 390.0), (768, 576))
    img = render_snapshot(frame(94), CAM, [moved], None, "mid", "crossing-in (line_cross) t=9.4s")
    assert not compare_picture(jpeg(img), reference).ok


def test_another_moment_fails(reference: np.ndarray) -> None:
    assert not compare_picture(jpeg(snapshot(frame(140))), reference).ok


def test_golden_lines_leave_out_only_the_jpeg_hash() -> None:
    line = (
        '{"event_id":"e1","phase":"start","label":"人","score":0.5,'
        '"snapshot":{"topic":"t","sha256":"ab","width":2,"height":1}}\n'
    )
    assert without_encoder_bytes(line) == (
        '{"event_id":"e1","phase":"start","label":"人","score":0.5,'
        '"snapshot":{"topic":"t","width":2,"height":1}}\n'
    )

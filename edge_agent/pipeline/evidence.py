"""Evidence pictures: overlays of zones, lines and masks; event snapshots; JPEG files.

Privacy masks are burned in (filled black) before detection by the gate, so
every picture made from a gated frame already hides them; the overlays only
outline them for the installer's snapshot.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.core.config import CameraConfig
from edge_agent.core.geometry import to_pixels
from edge_agent.core.types import CropRef, Detections, EventObject, Owner, OwnerSighting, SnapshotRef, iso_utc
from edge_agent.pipeline.evidence_store import EvidenceStore  # noqa: F401  (imported from here too)

logger = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]

ZONE_COLOUR = (0, 200, 255)
LINE_COLOUR = (255, 160, 0)
MASK_COLOUR = (128, 128, 128)
OBJECT_COLOUR = (60, 220, 60)
ALERT_COLOUR = (40, 40, 255)


def _text(
    img: Image, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float = 0.5
) -> None:
    x, y = org
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    y = max(y, th + 2)
    cv2.rectangle(img, (x, y - th - 2), (x + tw + 2, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 1, y - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def draw_overlays(
    img: Image,
    cam: CameraConfig,
    highlight_zone: str | None = None,
    highlight_line: str | None = None,
) -> Image:
    """Draw the camera's zones, lines and masks (labelled) onto `img` in place."""
    h, w = img.shape[:2]
    for mask in cam.masks:
        pts = np.round(to_pixels(mask, w, h)).astype(np.int32)
        cv2.polylines(img, [pts], True, MASK_COLOUR, 1, cv2.LINE_AA)
        _text(img, "mask", (int(pts[:, 0].min()) + 2, int(pts[:, 1].min()) + 14), MASK_COLOUR, 0.4)
    for name, zone in cam.zones.items():
        pts = np.round(to_pixels(zone.polygon, w, h)).astype(np.int32)
        colour = ALERT_COLOUR if name == highlight_zone else ZONE_COLOUR
        cv2.polylines(img, [pts], True, colour, 3 if name == highlight_zone else 2, cv2.LINE_AA)
        _text(img, name, (int(pts[:, 0].min()) + 2, int(pts[:, 1].min()) + 16), colour)
    for name, line in cam.lines.items():
        (ax, ay), (bx, by) = np.round(to_pixels(line.points, w, h)).astype(int).tolist()
        colour = ALERT_COLOUR if name == highlight_line else LINE_COLOUR
        cv2.line(img, (ax, ay), (bx, by), colour, 2, cv2.LINE_AA)
        # a small arrow at the middle points to the line's "in" side (its right)
        mx, my = (ax + bx) // 2, (ay + by) // 2
        length = max(float(np.hypot(bx - ax, by - ay)), 1.0)
        nx, ny = -(by - ay) / length, (bx - ax) / length
        cv2.arrowedLine(
            img, (mx, my), (int(mx + nx * 25), int(my + ny * 25)), colour, 2, cv2.LINE_AA, tipLength=0.4
        )
        _text(img, f"{name} (in)", (int(mx + nx * 28), int(my + ny * 28)), colour, 0.45)
    return img


def draw_objects(
    img: Image, objects: Iterable[EventObject], colour: tuple[int, int, int] = ALERT_COLOUR
) -> Image:
    for o in objects:
        x1, y1, x2, y2 = (round(v) for v in o.xyxy)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
        _text(img, f"{o.label} #{o.track_id} {o.score:.2f}", (x1, y1 - 3), colour)
    return img


def draw_detections(img: Image, dets: Detections, labels: tuple[str, ...] | list[str]) -> Image:
    for i in range(len(dets)):
        x1, y1, x2, y2 = (round(float(v)) for v in dets.xyxy[i])
        cid = int(dets.class_id[i])
        name = labels[cid] if 0 <= cid < len(labels) else f"class{cid}"
        tid = "" if dets.track_id is None else f" #{int(dets.track_id[i])}"
        cv2.rectangle(img, (x1, y1), (x2, y2), OBJECT_COLOUR, 1)
        _text(img, f"{name}{tid}", (x1, y1 - 2), OBJECT_COLOUR, 0.4)
    return img


def draw_rule_states(img: Image, states: Mapping[str, int], media_s: float) -> Image:
    lines = [f"t={media_s:7.1f}s"] + [
        f"{rule}: {f'ACTIVE x{n}' if n else 'idle'}" for rule, n in states.items()
    ]
    for i, line in enumerate(lines):
        colour = ALERT_COLOUR if "ACTIVE" in line else (255, 255, 255)
        _text(img, line, (6, 18 + 18 * i), colour, 0.5)
    return img


def render_snapshot(
    masked_image: Image,
    cam: CameraConfig,
    objects: Iterable[EventObject],
    zone: str | None,
    line: str | None,
    caption: str,
) -> Image:
    img = masked_image.copy()
    draw_overlays(img, cam, highlight_zone=zone, highlight_line=line)
    draw_objects(img, objects)
    _text(img, caption, (6, img.shape[0] - 8), (255, 255, 255), 0.55)
    return img


def encode_jpeg(img: Image, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def owner_of(sighting: OwnerSighting, jpeg: bytes | None) -> Owner:
    """The event's `owner` from a rule's best view of it and the JPEG of its crop."""
    crop = None
    if jpeg is not None:
        h, w = sighting.crop.shape[:2]
        crop = CropRef(sha256=hashlib.sha256(jpeg).hexdigest(), width=int(w), height=int(h))
    return Owner(
        track_id=sighting.track_id,
        label=sighting.label,
        xyxy=sighting.xyxy,
        frame_size=sighting.frame_size,
        seen_at=iso_utc(sighting.wall_ts),
        media_s=sighting.media_s,
        crop=crop,
    )


def snapshot_ref(jpeg: bytes, topic: str, width: int, height: int) -> SnapshotRef:
    return SnapshotRef(topic=topic, sha256=hashlib.sha256(jpeg).hexdigest(), width=width, height=height)

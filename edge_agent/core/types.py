"""The data that crosses stages: Frame, Detections, Event.

`Event` is the one place in code where the event contract of PRODUCT.md is
written down; `mqtt/event.schema.json` is its published twin and the tests
check one against the other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

EVENT_SCHEMA = "eagleeye.event/1"
PHASES = ("start", "update", "end")
SEVERITIES = ("info", "warning", "alert")


def iso_utc(wall_ts: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds and a Z, as in every payload: 2026-11-26T08:15:02.400Z.

    `None` means now.
    """
    dt = datetime.fromtimestamp(round(time.time() if wall_ts is None else wall_ts, 3), timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Frame:
    """One decoded picture of one camera.

    `media_s` is seconds from the start of the source (replay time comes from
    the video, never from the wall clock); `wall_ts` is the UNIX time the frame
    stands for (live: when it was read; replay: the replay's start time plus
    `media_s`).
    """

    camera_id: str
    index: int
    media_s: float
    wall_ts: float
    image: npt.NDArray[np.uint8]

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


def _as_array(value: Any, dtype: type, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    arr: np.ndarray = np.asarray(value, dtype=dtype)
    # Arrays of the right shape, the stages' own, pass with two comparisons: detections are
    # made and indexed several times per analysed frame.
    if arr.shape == shape or (shape[0] is None and arr.ndim == 2 and arr.shape[1] == shape[1]):
        return arr
    if arr.size == 0 and len(shape) == 2:
        arr = arr.reshape(0, shape[1] or 0)
    ok = arr.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(arr.shape, shape, strict=True)
    )
    if not ok:
        want_txt = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"Detections.{name}: expected shape {want_txt}, got {tuple(arr.shape)}")
    return arr


class Detections:
    """Parallel arrays of boxes in frame pixels, one row per object.

    Stages return new objects and never mutate their input; indexing with a
    boolean mask, an index array or a slice gives a new `Detections`.
    """

    __slots__ = ("_anchors", "class_id", "score", "track_id", "xyxy")

    def __init__(
        self,
        xyxy: Any,
        score: Any,
        class_id: Any,
        track_id: Any | None = None,
    ) -> None:
        self.xyxy: npt.NDArray[np.float32] = _as_array(xyxy, np.float32, "xyxy", (None, 4))
        n = len(self.xyxy)
        self.score: npt.NDArray[np.float32] = _as_array(score, np.float32, "score", (n,))
        self.class_id: npt.NDArray[np.int32] = _as_array(class_id, np.int32, "class_id", (n,))
        self.track_id: npt.NDArray[np.int64] | None = (
            None if track_id is None else _as_array(track_id, np.int64, "track_id", (n,))
        )
        self._anchors: npt.NDArray[np.float32] | None = None

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index],
            self.score[index],
            self.class_id[index],
            None if self.track_id is None else self.track_id[index],
        )

    def __repr__(self) -> str:
        return f"Detections(n={len(self)}, tracked={self.track_id is not None})"

    def with_track_ids(self, track_id: Any) -> Detections:
        return Detections(self.xyxy, self.score, self.class_id, track_id)

    @property
    def anchors(self) -> npt.NDArray[np.float32]:
        """Bottom-centre points (n, 2): where an object stands on the ground.

        Made once and kept (read-only): every zone and line rule of a frame asks for them.
        """
        if self._anchors is None:
            anchors = np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1)
            anchors.flags.writeable = False
            self._anchors = anchors
        return self._anchors

    @property
    def heights(self) -> npt.NDArray[np.float32]:
        return self.xyxy[:, 3] - self.xyxy[:, 1]


@dataclass(frozen=True)
class EventObject:
    """One object an incident is about: the one type from the rule that names it to the event.

    `xyxy` is its box in the pixels of the frame it was seen in, `frame_size` that frame's
    (width, height); `bbox` is the box relative to the frame (0..1), as the contract
    publishes it. A box already relative is one in a 1x1 frame, the default.
    """

    track_id: int
    label: str
    score: float
    xyxy: tuple[float, float, float, float]
    frame_size: tuple[int, int] = (1, 1)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        width, height = self.frame_size
        x1, y1, x2, y2 = self.xyxy
        return (x1 / width, y1 / height, x2 / width, y2 / height)

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "label": self.label,
            "score": round(self.score, 3),
            "bbox": [round(v, 4) for v in self.bbox],
        }


@dataclass(frozen=True)
class SnapshotRef:
    """Where an event's evidence picture is published and what it is."""

    topic: str
    sha256: str
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "sha256": self.sha256, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class OwnerSighting:
    """A rule's best view of a left object's owner: its box in one frame and a crop of it.

    `crop` is a BGR picture of the owner (privacy masks already applied: it is cut from the
    analysed frame), at most a few hundred pixels on its long side.
    """

    track_id: int
    label: str
    xyxy: tuple[float, float, float, float]
    frame_size: tuple[int, int]
    media_s: float
    wall_ts: float
    crop: npt.NDArray[np.uint8] = field(repr=False, compare=False)
    score: float = 0.0  # the detector's confidence in that frame
    arrived_s: float = 0.0  # media time the track was first seen near the object
    left_s: float = 0.0  # ... and last seen near it


@dataclass(frozen=True)
class CropRef:
    """A crop of an object from one frame (the owner's), a JPEG."""

    sha256: str
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Owner:
    """The person or vehicle that brought a left object, at its best frame near the object."""

    track_id: int
    label: str
    xyxy: tuple[float, float, float, float]  # in the pixels of that frame
    frame_size: tuple[int, int]
    seen_at: str  # that frame's time, RFC 3339 UTC
    media_s: float
    crop: CropRef | None = None

    def to_dict(self) -> dict[str, Any]:
        ref = EventObject(self.track_id, self.label, 0.0, self.xyxy, self.frame_size)
        return {
            "track_id": self.track_id,
            "label": self.label,
            "bbox": [round(v, 4) for v in ref.bbox],
            "seen_at": self.seen_at,
            "media_s": round(self.media_s, 3),
            "crop": None if self.crop is None else self.crop.to_dict(),
        }


@dataclass(frozen=True)
class ClipRef:
    """An event's video clip: an H.264 MP4 sent in `chunks` pieces on the clips topic."""

    sha256: str
    bytes: int
    chunks: int
    start_media_s: float
    end_media_s: float
    started_at: str
    duration_s: float  # how long it plays (two parts: less than end - start, by the jump)
    content_type: str = "video/mp4"

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "bytes": self.bytes,
            "chunks": self.chunks,
            "content_type": self.content_type,
            "start_media_s": round(self.start_media_s, 3),
            "end_media_s": round(self.end_media_s, 3),
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True)
class EvidenceBytes:
    """What an event's `owner.crop` and `clip` describe, for the sinks that deliver them (the
    outbox); never part of the event's JSON."""

    owner_jpeg: bytes | None = None
    clip: bytes | None = None


@dataclass(frozen=True)
class Event:
    """One phase (start / update / end) of one incident; see PRODUCT.md "Events"."""

    event_id: str
    phase: str
    site: str
    device: str
    camera: str
    rule: str
    kind: str
    severity: str
    zone: str | None
    label: str | None
    score: float | None
    objects: tuple[EventObject, ...]
    started_at: str
    ts: str
    media_s: float
    duration_s: float
    snapshot: SnapshotRef | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    alarm_type: int | None = None  # GB/T 28181 video-alarm code of the kind (contract/alarms.py)
    owner: Owner | None = None  # left_object: who brought the object
    clip: ClipRef | None = None  # the video around the incident, once cut
    evidence: EvidenceBytes | None = field(default=None, repr=False, compare=False)  # their bytes

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"Event.phase: expected one of {PHASES}, got {self.phase!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"Event.severity: expected one of {SEVERITIES}, got {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": EVENT_SCHEMA,
            "event_id": self.event_id,
            "phase": self.phase,
            "site": self.site,
            "device": self.device,
            "camera": self.camera,
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "zone": self.zone,
            "label": self.label,
            "score": None if self.score is None else round(self.score, 3),
            "objects": [o.to_dict() for o in self.objects],
            "started_at": self.started_at,
            "ts": self.ts,
            "media_s": round(self.media_s, 3),
            "duration_s": round(self.duration_s, 3),
            "snapshot": None if self.snapshot is None else self.snapshot.to_dict(),
            "alarm_type": self.alarm_type,
        }
        if self.owner is not None:
            out["owner"] = self.owner.to_dict()
        if self.clip is not None:
            out["clip"] = self.clip.to_dict()
        if self.details:
            out["details"] = dict(self.details)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

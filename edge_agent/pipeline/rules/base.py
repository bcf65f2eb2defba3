"""What every rule kind sees and returns: a `Scene` in, `Observation`s out.

A kind is one module with one class that turns scenes into the incidents that
hold right now; the engine (`engine.py`) owns the event lifecycle
(start/update/end, cooldown, schedule, severity, ids), so a new kind never
writes that again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.core.counts import CountReport
from edge_agent.core.types import Detections, EventObject, Frame, OwnerSighting
from edge_agent.pipeline.thumbnail import work_grey


@dataclass(frozen=True)
class Scene:
    """One analysed frame of one camera: the (masked) picture and its tracked objects."""

    frame: Frame
    dets: Detections  # tracked: track_id is set
    labels: Sequence[str]  # class_id -> label name
    thumbnail: npt.NDArray[np.uint8] | None = None  # made already (beside the detector), if it was

    @cached_property
    def grey(self) -> npt.NDArray[np.uint8]:
        """The frame's shared thumbnail (pipeline/thumbnail.py), made once, when a rule first asks."""
        return self.thumbnail if self.thumbnail is not None else work_grey(self.frame.image)

    @property
    def media_s(self) -> float:
        return self.frame.media_s

    def label_of(self, i: int) -> str:
        cid = int(self.dets.class_id[i])
        return self.labels[cid] if 0 <= cid < len(self.labels) else f"class{cid}"


@dataclass(frozen=True)
class Observation:
    """One incident that holds in this frame.

    `key` tells incidents of one rule apart (a track, or the whole zone);
    `since_s` is when the condition began (the event's `started_at`);
    `instant` incidents (a line crossing) give one `start` and no `end`;
    `end` says the incident ends in this frame, with these `details` (why it ended),
    and never starts one that is not open; `owner` is who brought a left object, as best seen.
    """

    key: str
    since_s: float
    objects: tuple[EventObject, ...]
    instant: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    end: bool = False
    owner: OwnerSighting | None = None


class RuleKind(Protocol):
    """The state machine of one rule on one camera.

    A kind that reads `Scene.grey` on every frame says so with `uses_thumbnail = True`
    (an attribute; absent means False), so the motion gate shares that thumbnail.
    """

    def update(self, scene: Scene) -> list[Observation]: ...


@runtime_checkable
class Aggregating(Protocol):
    """A kind that reports aggregates per interval (`count`) instead of incidents."""

    resume: Callable[[float], Mapping[str, Any] | None] | None

    def take_reports(self) -> list[CountReport]: ...

    def take_checkpoint(self) -> CountReport | None: ...

    def flush(self, media_s: float) -> list[CountReport]: ...


@dataclass(frozen=True)
class RuleKindSpec:
    """One rule kind as the registry lists it (`registry.py`).

    `name` is the config's `kind`; `config` its pydantic model (a `RuleConfigBase` with
    `kind: Literal[name]`); `build(rule, camera, min_score)` makes the rule's state machine
    for one camera. The config union and the engine's dispatch are both built from these.
    """

    name: str
    config: type[RuleConfigBase]
    build: Callable[[Any, CameraConfig, float], RuleKind]


def zone_polygon(rule: RuleConfigBase, cam: CameraConfig) -> list[tuple[float, float]]:
    """The relative polygon of the zone a rule names (`rule.zone`)."""
    return [(float(x), float(y)) for x, y in cam.zones[getattr(rule, "zone")].polygon]  # noqa: B009


def line_points(rule: RuleConfigBase, cam: CameraConfig) -> list[tuple[float, float]]:
    """The two relative points of the line a rule names (`rule.line`)."""
    return [(float(x), float(y)) for x, y in cam.lines[getattr(rule, "line")].points]  # noqa: B009


def object_refs(scene: Scene, indices: Sequence[int] | npt.NDArray[np.intp]) -> tuple[EventObject, ...]:
    dets = scene.dets
    assert dets.track_id is not None, "rules need tracked detections"
    return tuple(
        EventObject(
            track_id=int(dets.track_id[i]),
            label=scene.label_of(int(i)),
            score=float(dets.score[i]),
            xyxy=(
                float(dets.xyxy[i, 0]),
                float(dets.xyxy[i, 1]),
                float(dets.xyxy[i, 2]),
                float(dets.xyxy[i, 3]),
            ),
            frame_size=(scene.frame.width, scene.frame.height),
        )
        for i in indices
    )


def select(scene: Scene, labels: Sequence[str] | None, min_score: float) -> npt.NDArray[np.intp]:
    """Indices of the scene's objects with one of `labels` (None: any) and score ≥ min_score."""
    dets = scene.dets
    keep = dets.score >= min_score
    if labels is not None:
        wanted = set(labels)
        keep &= np.array([scene.label_of(i) in wanted for i in range(len(dets))], dtype=bool)
    return np.flatnonzero(keep)

"""What every rule kind sees and returns: a `Scene` in, `Observation`s out.

A kind is one module with one class that turns scenes into the incidents that
hold right now; the engine (`engine.py`) owns the event lifecycle
(start/update/end, cooldown, schedule, severity, ids), so a new kind never
writes that again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
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
    # What the rules of this frame work out alike (a selection, its anchors, a zone test, an
    # object's reference), kept for the other rules: several rules of a camera ask the same.
    shared: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

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

    @cached_property
    def label_names(self) -> list[str]:
        """`label_of` of every object, in row order."""
        labels, count = self.labels, len(self.labels)
        return [labels[c] if 0 <= c < count else f"class{c}" for c in self.dets.class_id.tolist()]

    @cached_property
    def _rows(self) -> tuple[list[int], list[float], list[tuple[float, float, float, float]]]:
        """Track ids, scores and boxes as Python numbers (the values `int()`/`float()` give)."""
        assert self.dets.track_id is not None, "rules need tracked detections"
        boxes = [(x1, y1, x2, y2) for x1, y1, x2, y2 in self.dets.xyxy.tolist()]
        return self.dets.track_id.tolist(), self.dets.score.tolist(), boxes

    def object_ref(self, i: int) -> EventObject:
        """The reference to object `i` that events carry, made once per frame."""
        key = ("ref", i)
        ref: EventObject | None = self.shared.get(key)
        if ref is None:
            track_ids, scores, boxes = self._rows
            size = (self.frame.width, self.frame.height)
            ref = EventObject(track_ids[i], self.label_names[i], scores[i], boxes[i], size)
            self.shared[key] = ref
        return ref


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
    assert scene.dets.track_id is not None, "rules need tracked detections"
    if isinstance(indices, np.ndarray):
        indices = indices.tolist()
    return tuple(scene.object_ref(int(i)) for i in indices)


def select(scene: Scene, labels: Sequence[str] | None, min_score: float) -> npt.NDArray[np.intp]:
    """Indices of the scene's objects with one of `labels` (None: any) and score ≥ min_score.

    Worked out once per frame for each (labels, min_score): the rules of a camera mostly
    ask for the same. The array is shared, so it is read-only.
    """
    key = ("select", None if labels is None else tuple(labels), min_score)
    idx: npt.NDArray[np.intp] | None = scene.shared.get(key)
    if idx is None:
        keep = scene.dets.score >= min_score
        if labels is not None:
            wanted = set(labels)
            keep &= np.array([name in wanted for name in scene.label_names], dtype=bool)
        idx = np.flatnonzero(keep)
        idx.flags.writeable = False
        scene.shared[key] = idx
    return idx


def selected(scene: Scene, idx: npt.NDArray[np.intp]) -> Detections:
    """`scene.dets[idx]`, made once per frame for each set of indices, so the rules that select
    the same objects share it (and its anchors)."""
    key = ("dets", idx.dtype.str, idx.tobytes())
    dets: Detections | None = scene.shared.get(key)
    if dets is None:
        dets = scene.shared[key] = scene.dets[idx]
    return dets

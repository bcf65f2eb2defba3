"""`left_object`: something was put down in the zone and the one who brought it left.

One rule kind, two evidence paths over one store of static candidates
(`static_store.py`):

- **detector path** (`left_object_detector.py`): tracked objects of `labels` (default
  `DEFAULT_LEFT_OBJECT_LABELS`: backpack, handbag, suitcase, ...) that stay still for
  `min_static_s` with no track of `owner_labels` near them. `details.path: "detector"`.
- **background path** (`left_object_background.py`): new static regions of at least
  `min_area` of the frame found by a dual background model (`background.py`), which no
  owner-label track box covers and no detected object explains: things the model has no
  class for (a garbage bag, a pile of rubble). Label `"object"`, a track id of its own
  range (`static_store.BACKGROUND_ID_BASE + n`), the region's box (the object's extent)
  and its foreground confidence as `score`. `details.path: "background"`.

`paths` (default `[detector, background]`) says which paths may fire the rule; the older
`background: false` means `paths: [detector]`. `labels: []` also turns the detector path
off.

**Removed, not left.** A region the background model classes as a ghost (something that
was there went away) never starts an incident, and an open incident whose object stood
there ends now. An open incident whose object is gone (its spot looks again as the
background did, it was seen carried off, or it was unseen for `LOST_S`) ends with
`details.ended_by: "removed"`. The place a left object vanished from is remembered in the
shared store, so what it leaves behind there is never a new static region: an object
taken away never starts an incident.

The owner is the owner-label track whose box covered the object's place most in the
`OWNER_LOOKBACK_S` seconds before the object was first seen still (or while it was being
carried); it is `null` if nobody was seen there. All durations are seconds of media time.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from edge_agent.core.config import CameraConfig, RuleConfigBase
from edge_agent.pipeline.rules.background import DualBackground, Region
from edge_agent.pipeline.rules.base import Observation, RuleKindSpec, Scene, select, zone_polygon
from edge_agent.pipeline.rules.left_object_background import BackgroundPath
from edge_agent.pipeline.rules.left_object_detector import DetectorPath
from edge_agent.pipeline.rules.static_store import OwnerHistory, Path, StaticStore
from edge_agent.pipeline.rules.zones import PixelPolygon

DEFAULT_LEFT_OBJECT_LABELS = ["backpack", "handbag", "suitcase", "bottle", "chair", "umbrella"]


class LeftObjectRule(RuleConfigBase):
    kind: Literal["left_object"]
    zone: str
    min_static_s: float = Field(30.0, gt=0)
    paths: list[Path] | None = Field(
        None, description="Evidence paths that may fire the rule (default: detector and background)"
    )
    background: bool | None = Field(
        None, description="Older spelling: false means paths [detector]; true the default"
    )
    min_area: float = Field(0.001, gt=0, lt=1, description="Smallest object, as a share of the frame area")
    owner_labels: list[str] = Field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "truck", "bus"]
    )

    @model_validator(mode="after")
    def _one_spelling(self) -> LeftObjectRule:
        if self.paths is not None and self.background is not None:
            if ("background" in self.paths) != self.background:
                raise ValueError(
                    f"rule {self.id!r}: background: {str(self.background).lower()} contradicts "
                    f"paths: {self.paths}; give paths alone"
                )
        if self.paths is not None and not self.paths:
            raise ValueError(f"rule {self.id!r}: paths must name detector, background or both")
        return self

    def fire_paths(self) -> set[str]:
        """The evidence paths that may fire this rule (paths, else background, else both)."""
        if self.paths is not None:
            return set(self.paths)
        return {"detector", "background"} if self.background is not False else {"detector"}


class LeftObject:
    """The rule's state on one camera: the shared store, the owner history and the paths."""

    def __init__(self, rule: LeftObjectRule, polygon: list[tuple[float, float]], min_score: float) -> None:
        paths = rule.fire_paths()
        labels = list(rule.labels) if rule.labels is not None else list(DEFAULT_LEFT_OBJECT_LABELS)
        self.labels = labels if "detector" in paths else []
        self.owner_labels = list(rule.owner_labels)
        self.min_score = min_score
        self.min_area = rule.min_area
        zone = self.zone = PixelPolygon(polygon)
        self.store = StaticStore()
        self.owners = OwnerHistory()
        self.detector = DetectorPath(self.labels, min_score, rule.min_static_s, zone, self.store, self.owners)
        self.background = DualBackground() if "background" in paths else None
        self.background_path = (
            BackgroundPath(self.background, min_score, rule.min_static_s, zone, self.store, self.owners)
            if self.background is not None
            else None
        )
        self.uses_thumbnail = self.background is not None  # `Scene.grey`, every frame

    def _near_zone(self, scene: Scene) -> tuple[float, float, float, float]:
        """The zone's bounding box grown by a quarter of the frame each way: where an owner's view
        can be near an object in the zone (objects count up to ZONE_TOLERANCE outside it)."""
        w, h = scene.frame.width, scene.frame.height
        pts = self.zone.pixels(w, h)
        return (
            float(pts[:, 0].min()) - w / 4,
            float(pts[:, 1].min()) - h / 4,
            float(pts[:, 0].max()) + w / 4,
            float(pts[:, 1].max()) + h / 4,
        )

    def update(self, scene: Scene) -> list[Observation]:
        now = scene.media_s
        dets = scene.dets
        assert dets.track_id is not None
        oidx = select(scene, self.owner_labels, self.min_score)
        owner_boxes = dets.xyxy[oidx].astype(np.float32).reshape(-1, 4)
        self.owners.remember(now, dets.track_id[oidx], owner_boxes)
        self.owners.see(
            scene, oidx, self.store.of("detector") + self.store.of("background"), self._near_zone(scene)
        )

        ghosts: list[Region] = []
        found: list[Region] = []
        if self.background is not None:
            for r in self.background.update(scene.frame.image, now, scene.grey):
                if r.removed:
                    ghosts.append(r)
                elif r.area >= self.min_area:
                    found.append(r)
        out = self.detector.update(scene, owner_boxes, ghosts)
        if self.background_path is not None:
            out.extend(self.background_path.update(scene, owner_boxes, found, ghosts))
        return out


def _build(rule: LeftObjectRule, cam: CameraConfig, min_score: float) -> LeftObject:
    return LeftObject(rule, zone_polygon(rule, cam), min_score)


KIND = RuleKindSpec("left_object", LeftObjectRule, _build)

"""ByteTrack-style multi-object tracker: stable track ids for detections.

Each call to `Tracker.update` associates one frame's detections with the
tracks, in ByteTrack's order:

1. high-score detections against every confirmed track, tracked or lost, by
   IoU with the box the motion model predicts for this frame;
2. low-score detections against the confirmed tracks still unmatched and not
   lost. A dim detection (an occluded or blurred object) may carry a track on,
   but it never starts one and never revives a lost one: the low band is
   where false positives live;
3. the remaining high-score detections against tentative tracks (seen fewer
   than `min_hits` times), so that an established track has first claim;
4. what is left of the detections scoring at least `new_track_score` starts
   tentative tracks.

Matching is an optimal assignment (Hungarian) that maximises the summed IoU
above the threshold; ties go to the lower index, so the same input always
gives the same ids.

Time. Call `update` only for the frames the detector ran on, with the
frame's media time; the tracker never reads a clock. The motion model steps
by the seconds between calls, so irregular spacing is fine. A confirmed track
that a detector run does not see becomes lost, and ends once it has been lost
for more than `lost_s` seconds of media time. A motion gate that skips frames
where nothing moved therefore does not age a still object: only a detector
run that misses it starts its clock. On such a frame the pipeline calls `hold`
instead, which keeps settled tracks where they are for a fraction of an update.

Ids. A track gets its id when it is confirmed (its `min_hits`-th
consecutive detection), so an unconfirmed false positive uses no id: ids go
1, 2, 3... in order of confirmation (ties in detection order) and are never
reused, not even after `reset()`.

Cost. `update` runs for every detector run of every camera, so it works on
the whole batch at once: the motion states of all tracks live in two arrays
in track order (the filter steps them in one call, no per-track stacking),
and the IoU of every track with every detection is computed once per frame,
the three association steps taking their parts of it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from edge_agent.core.geometry import box_iou
from edge_agent.core.types import Detections
from edge_agent.pipeline.track import kalman
from edge_agent.pipeline.track.assignment import match_by_iou

logger = logging.getLogger(__name__)

TrackState = Literal["tentative", "tracked", "lost"]
Box = tuple[float, float, float, float]
IntArray = npt.NDArray[np.intp]

# Constant velocity is a poor guess beyond a couple of seconds; past this the
# predicted box stays where the model last put it instead of sailing off.
MAX_EXTRAPOLATION_S = 2.0


@dataclass(frozen=True)
class TrackInfo:
    """Read-only view of one confirmed track, for rules and annotated video.

    `xyxy` is the last detected box; `predicted_xyxy` is the motion model's
    box at the tracker's current time (for a lost track, where it should be
    now). Times are media seconds; `age_s` runs from the first detection to
    the tracker's current time.
    """

    track_id: int
    class_id: int
    state: TrackState
    xyxy: Box
    predicted_xyxy: Box
    score: float
    hits: int
    first_seen_s: float
    last_seen_s: float
    age_s: float


class _Track:
    """Bookkeeping of one track; its motion state is a row of `Tracker._means` / `_covs`."""

    __slots__ = (
        "class_id", "filter_s", "first_seen_s", "hits", "last_seen_s", "lost_since_s", "score", "state",
        "track_id", "xyxy",
    )  # fmt: skip

    def __init__(self, xyxy: Box, score: float, class_id: int, media_s: float) -> None:
        self.filter_s = media_s
        self.xyxy = xyxy
        self.score = score
        self.class_id = class_id
        self.hits = 1
        self.first_seen_s = media_s
        self.last_seen_s = media_s
        self.lost_since_s = math.inf
        self.state: TrackState = "tentative"
        self.track_id = 0


class Tracker:
    """ByteTrack-style tracker for one camera; see the module docs for the rules.

    `high_score` and `low_score` split the detections into the two
    association bands (below `low_score` a detection is ignored);
    `new_track_score` is the least score that starts a track. `match_iou` is
    the least IoU for a match in the high band, `low_match_iou` in the low
    band (stricter, as in ByteTrack). `lost_s` is how long a lost track waits
    to be found again, `min_hits` how many consecutive detections confirm a
    track, and with `class_aware` a detection only continues a track of its
    own class.
    """

    def __init__(
        self,
        *,
        high_score: float = 0.5,
        low_score: float = 0.1,
        new_track_score: float = 0.6,
        match_iou: float = 0.2,
        low_match_iou: float = 0.5,
        lost_s: float = 1.5,
        min_hits: int = 2,
        class_aware: bool = True,
    ) -> None:
        if not 0.0 <= low_score <= high_score <= 1.0:
            raise ValueError(
                f"Tracker: need 0 <= low_score <= high_score <= 1, got low_score={low_score}, "
                f"high_score={high_score}"
            )
        if not high_score <= new_track_score <= 1.0:
            raise ValueError(
                f"Tracker: need high_score <= new_track_score <= 1, got new_track_score={new_track_score}, "
                f"high_score={high_score}"
            )
        for name, value in (("match_iou", match_iou), ("low_match_iou", low_match_iou)):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"Tracker: {name} must be in (0, 1], got {value}")
        if not (math.isfinite(lost_s) and lost_s >= 0.0):
            raise ValueError(f"Tracker: lost_s must be a finite number of seconds >= 0, got {lost_s}")
        if min_hits < 1:
            raise ValueError(f"Tracker: min_hits must be >= 1, got {min_hits}")
        self._high_score = high_score
        self._low_score = low_score
        self._new_track_score = new_track_score
        self._match_iou = match_iou
        self._low_match_iou = low_match_iou
        self._lost_s = lost_s
        self._min_hits = min_hits
        self._class_aware = class_aware
        self._tracks: list[_Track] = []
        # Motion states, one row per entry of `_tracks`, in the same order.
        self._means = np.zeros((0, kalman.STATE_DIM))
        self._covs = np.zeros((0, kalman.STATE_DIM, kalman.STATE_DIM))
        self._next_id = 1
        self._now_s: float | None = None

    @property
    def tracks(self) -> tuple[TrackInfo, ...]:
        """Confirmed tracks (tracked and lost) as of the last `update`, by id."""
        now_s = self._now_s if self._now_s is not None else 0.0
        by_id = sorted((t.track_id, k) for k, t in enumerate(self._tracks) if t.track_id > 0)
        if not by_id:
            return ()
        rows = [k for _, k in by_id]
        predicted = kalman.state_to_xyxy(self._means[rows]).tolist()
        return tuple(
            TrackInfo(
                track_id=t.track_id,
                class_id=t.class_id,
                state=t.state,
                xyxy=t.xyxy,
                predicted_xyxy=_box(box),
                score=t.score,
                hits=t.hits,
                first_seen_s=t.first_seen_s,
                last_seen_s=t.last_seen_s,
                age_s=now_s - t.first_seen_s,
            )
            for t, box in zip((self._tracks[k] for k in rows), predicted, strict=True)
        )

    def reset(self) -> None:
        """Forget every track and the time (for a source that restarts); ids keep counting up."""
        self._keep([])
        self._now_s = None

    def update(self, dets: Detections, media_s: float) -> Detections:
        """Associate one detector run; return the detections of confirmed tracks, with `track_id`.

        The result keeps the input's order and boxes (not the filtered ones),
        minus detections that belong to no confirmed track. `media_s` must not
        go back in time; call `reset()` first when a source restarts.
        """
        media_s = float(media_s)
        if not math.isfinite(media_s):
            raise ValueError(f"Tracker.update: media_s must be finite, got {media_s}")
        if self._now_s is not None and media_s < self._now_s:
            raise ValueError(
                f"Tracker.update: media_s went back from {self._now_s:.3f} to {media_s:.3f}; "
                "call reset() when a source restarts"
            )
        self._now_s = media_s
        self._drop_expired(media_s)
        iou = self._iou(dets, self._predict(media_s))

        # track_of_det[i]: index into self._tracks of the track detection i continues, or -1.
        track_of_det = np.full(len(dets), -1, dtype=np.intp)
        high = (dets.score >= self._high_score).nonzero()[0]
        low = ((dets.score >= self._low_score) & (dets.score < self._high_score)).nonzero()[0]
        confirmed = [k for k, t in enumerate(self._tracks) if t.state != "tentative"]
        tentative = [k for k, t in enumerate(self._tracks) if t.state == "tentative"]

        high = self._associate(iou, high, confirmed, self._match_iou, track_of_det)
        matched = set(track_of_det.tolist())
        still_tracked = [k for k in confirmed if k not in matched and self._tracks[k].state == "tracked"]
        self._associate(iou, low, still_tracked, self._low_match_iou, track_of_det)
        high = self._associate(iou, high, tentative, self._match_iou, track_of_det)

        self._apply_matches(dets, track_of_det, media_s)
        self._start_tracks(dets, high, track_of_det, media_s)
        continued = track_of_det.tolist()
        ids = np.array([self._tracks[k].track_id if k >= 0 else 0 for k in continued], dtype=np.int64)
        self._mark_unmatched(set(continued), media_s)

        reported = ids > 0
        return Detections(dets.xyxy[reported], dets.score[reported], dets.class_id[reported], ids[reported])

    def hold(self, media_s: float) -> bool:
        """A frame where the motion gate saw nothing move: keep every track where it is.

        Only when every track is settled (confirmed and seen by the last detector run):
        then `update` with the last detections again would match each track to its own
        box and return what it returned last time, so the caller reuses that answer. The
        tracks count as seen now and at rest (zero velocity): the next detector run
        predicts from here, so an object that stopped is not carried off by the speed it
        arrived with, nor aged while nothing moved. False (nothing changed) while a
        track is tentative or lost: then call `update`.
        """
        media_s = float(media_s)
        if self._now_s is None or not math.isfinite(media_s) or media_s < self._now_s:
            return False
        if any(t.state != "tracked" for t in self._tracks):
            return False
        self._now_s = media_s
        self._means[:, kalman.MEASUREMENT_DIM :] = 0.0
        for t in self._tracks:
            t.filter_s = media_s
            t.last_seen_s = media_s
            t.hits += 1
        return True

    def _keep(self, rows: list[int]) -> None:
        """Keep only the tracks at `rows` (in order), with their motion states."""
        if len(rows) < len(self._tracks):
            self._tracks = [self._tracks[k] for k in rows]
            self._means, self._covs = self._means[rows], self._covs[rows]

    def _drop_expired(self, now_s: float) -> None:
        keep: list[int] = []
        for k, t in enumerate(self._tracks):
            if t.state == "lost" and now_s - t.lost_since_s > self._lost_s:
                logger.debug(
                    "track %d ended: lost since %.3f s, last seen %.3f s",
                    t.track_id,
                    t.lost_since_s,
                    t.last_seen_s,
                )
            else:
                keep.append(k)
        self._keep(keep)

    def _predict(self, now_s: float) -> npt.NDArray[np.float32]:
        """Carry every track to `now_s`; return the predicted boxes (n, 4)."""
        if not self._tracks:
            return np.zeros((0, 4), dtype=np.float32)
        lost = [k for k, t in enumerate(self._tracks) if t.state == "lost"]
        # As ByteTrack: a lost box keeps its size; a shrinking trend would
        # otherwise collapse it while nobody looks.
        if lost:
            self._means[lost, 6:8] = 0.0
        dt_s = [max(min(now_s, t.last_seen_s + MAX_EXTRAPOLATION_S) - t.filter_s, 0.0) for t in self._tracks]
        self._means, self._covs = kalman.predict(self._means, self._covs, np.array(dt_s))
        for t, dt in zip(self._tracks, dt_s, strict=True):
            t.filter_s += dt
        return kalman.state_to_xyxy(self._means).astype(np.float32)

    def _iou(self, dets: Detections, predicted: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """IoU (tracks, detections) as association sees it: -1 where a class-aware match is barred."""
        if not self._tracks or len(dets) == 0:
            return np.zeros((len(self._tracks), len(dets)), dtype=np.float32)
        lost = [k for k, t in enumerate(self._tracks) if t.state == "lost"]
        # Constant velocity is only a guess while nobody sees the object: one
        # that stopped behind an occluder comes back where it was last seen.
        if lost:
            last_seen = np.array([self._tracks[k].xyxy for k in lost], dtype=np.float32)
            both = box_iou(np.concatenate([predicted, last_seen]), dets.xyxy)
            iou = both[: len(predicted)]
            iou[lost] = np.maximum(iou[lost], both[len(predicted) :])
        else:
            iou = box_iou(predicted, dets.xyxy)
        if self._class_aware:
            track_class = np.array([t.class_id for t in self._tracks])
            iou[track_class[:, None] != dets.class_id[None, :]] = -1.0
        return iou

    def _associate(
        self,
        iou: npt.NDArray[np.float32],
        det_idx: IntArray,
        track_idx: list[int],
        min_iou: float,
        track_of_det: IntArray,
    ) -> IntArray:
        """Match `det_idx` to `track_idx`, writing into `track_of_det`; return the unmatched detections."""
        if len(det_idx) == 0 or not track_idx:
            return det_idx
        tracks = np.asarray(track_idx, dtype=np.intp)
        rows, cols = match_by_iou(iou[tracks[:, None], det_idx], min_iou)
        track_of_det[det_idx[cols]] = tracks[rows]
        unmatched = np.ones(len(det_idx), dtype=bool)
        unmatched[cols] = False
        return det_idx[unmatched]

    def _apply_matches(self, dets: Detections, track_of_det: IntArray, media_s: float) -> None:
        det_idx = (track_of_det >= 0).nonzero()[0]
        if len(det_idx) == 0:
            return
        rows = track_of_det[det_idx]
        self._means[rows], self._covs[rows] = kalman.correct(
            self._means[rows], self._covs[rows], dets.xyxy[det_idx]
        )
        boxes, scores, classes = dets.xyxy.tolist(), dets.score.tolist(), dets.class_id.tolist()
        # Detection order, so that tracks confirmed together get ids in input order.
        for i, k in zip(det_idx.tolist(), rows.tolist(), strict=True):
            t = self._tracks[k]
            xyxy, score, class_id = boxes[i], scores[i], classes[i]
            t.filter_s = media_s
            t.xyxy = _box(xyxy)
            t.score = score
            t.class_id = class_id
            t.hits += 1
            t.last_seen_s = media_s
            t.lost_since_s = math.inf
            if t.state == "tentative":
                if t.hits >= self._min_hits:
                    self._confirm(t)
            else:
                t.state = "tracked"

    def _start_tracks(
        self, dets: Detections, unmatched_high: IntArray, track_of_det: IntArray, media_s: float
    ) -> None:
        new = unmatched_high[dets.score[unmatched_high] >= self._new_track_score]
        if len(new) == 0:
            return
        means, covs = kalman.initiate(dets.xyxy[new])
        self._means = np.concatenate([self._means, means])
        self._covs = np.concatenate([self._covs, covs])
        for i, xyxy, score, class_id in zip(
            new.tolist(),
            dets.xyxy[new].tolist(),
            dets.score[new].tolist(),
            dets.class_id[new].tolist(),
            strict=True,
        ):
            t = _Track(_box(xyxy), score, class_id, media_s)
            if self._min_hits <= 1:
                self._confirm(t)
            track_of_det[i] = len(self._tracks)
            self._tracks.append(t)

    def _mark_unmatched(self, matched: set[int], media_s: float) -> None:
        keep: list[int] = []
        for k, t in enumerate(self._tracks):
            if k not in matched:
                if t.state == "tentative":
                    # Not seen on consecutive detector runs: too weak to keep.
                    continue
                if t.state == "tracked":
                    t.state = "lost"
                    t.lost_since_s = media_s
            keep.append(k)
        self._keep(keep)

    def _confirm(self, t: _Track) -> None:
        t.state = "tracked"
        t.track_id = self._next_id
        self._next_id += 1
        logger.debug("track %d confirmed: class %d after %d hits", t.track_id, t.class_id, t.hits)


def _box(values: list[float]) -> Box:
    a, b, c, d = values
    return (a, b, c, d)

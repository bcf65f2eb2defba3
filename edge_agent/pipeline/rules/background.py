"""A dual background model: new static things that no detector class names.

Two running averages of a downscaled, blurred grey frame are kept, both with
time constants in seconds of media time (never frames, never the wall clock):

- the *fast* background follows the scene within a couple of seconds, so an
  object that was put down becomes part of it almost at once;
- the *slow* background is what the place looked like before. It is updated
  only where nothing static and new stands (selective update), so a dumped bag
  stays "new" for as long as it lies there, and it is reset only deliberately:
  on a global change of the picture.

A pixel that differs from the slow background but matches the fast one (and
the current frame) is *new static foreground*. Connected regions of it are
returned in frame pixels; the `left_object` rule decides which of them are
incidents (inside the zone, explained by no person or vehicle track, old
enough).

A global change (more than `GLOBAL_CHANGE` of the frame differs at once:
street lights switching on, a cloud, the camera's exposure or IR switch)
resets both backgrounds to the current frame instead of reporting the whole
picture as one huge object.

**Removed, not left (ghosts).** A region also appears where something that
was part of the slow background goes away: the "ghost" of background
subtraction (Cucchiara, Grana, Piccardi, Prati, "Detecting moving objects,
ghosts, and shadows in video streams", IEEE PAMI 25(10), 2003). Each region is
classed by the contour test of abandoned/removed-object detection (Connell et
al., "Detection and tracking in the IBM PeopleVision system", ICME 2004; Tian,
Feris, Liu, Hampapur, Sun, "Robust detection of abandoned and removed objects
in complex surveillance videos", IEEE SMC-C 41(5), 2011): an object put down
brings its outline, so the gradient along the region's boundary is stronger in
the current frame than in the slow background; where one was taken away the
outline is in the slow background and the current frame shows plain ground. A
region whose boundary is at least `GHOST_MARGIN` times stronger in the slow
background is `removed`: it is reported once with that flag and healed at once
(the slow background takes the current look there), so it never becomes a
"new static" thing.

**Light.** Before comparing, each frame is brought to the slow background's
lighting (`_relight`): the ratio frame/background, median-smoothed over a
41-pixel window, is divided out. Exposure drift, soft cloud shadows and an
infrared switch's gain step are smooth in space and vanish; a bag is small in
the window and stays. Limits: an object covering more than half of the window
(about 115x115 px of a 640-px-wide picture) is partly taken for light, and a
hard-edged shadow (a wall's) is not smooth: both are documented in
docs/rules.md.

**Score.** Each region's `score` is its foreground confidence: the mean of
|fast − slow| / 255 over its pixels (0..1; a dark bag on a pale road is about
0.3-0.6, a faint change about 0.12, the least that counts is DIFF_LEVEL/255).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.pipeline.thumbnail import WORK_WIDTH, work_grey

log = logging.getLogger(__name__)

GHOST_MARGIN = 1.25  # boundary gradient this much stronger in the slow background: removed
MATCH_BACKGROUND = 0.85  # share of a box's pixels back at the slow background's look: it is gone
MERGE_PX = 2  # fragments this close (working pixels) are one object
RELIGHT_PX = 41  # window of the smooth light field (working pixels, odd): a quarter of the width
FAST_TAU_S = 1.0  # time constant of the fast background
SLOW_TAU_S = 120.0  # time constant of the slow background where nothing new stands
DIFF_LEVEL = 28.0  # grey levels (0..255) that count as "different"
GLOBAL_CHANGE = 0.4  # share of the frame that changing at once means a global change
MAX_REGION = 0.25  # regions larger than this share of the frame are not objects
EDGE_SHARE = 0.5  # a fragment grows to where the difference falls to this share of its contrast
GROW_FLOOR = 1.0 / 3.0  # ... but never below this share of DIFF_LEVEL (noise)


@dataclass(frozen=True)
class Region:
    """One connected region of new static foreground, in frame pixels."""

    xyxy: tuple[float, float, float, float]
    area: float  # share of the frame area
    score: float = 0.0  # foreground confidence: mean |fast - slow| / 255 over its pixels
    removed: bool = False  # a ghost: something that was there went away


class DualBackground:
    def __init__(
        self,
        fast_tau_s: float = FAST_TAU_S,
        slow_tau_s: float = SLOW_TAU_S,
        diff_level: float = DIFF_LEVEL,
        global_change: float = GLOBAL_CHANGE,
    ) -> None:
        self.fast_tau_s = fast_tau_s
        self.slow_tau_s = slow_tau_s
        self.diff_level = diff_level
        self.global_change = global_change
        self._fast: npt.NDArray[np.float32] | None = None
        self._slow: npt.NDArray[np.float32] | None = None
        self._last_s = 0.0
        self._scale = 1.0
        self._grey: npt.NDArray[np.float32] | None = None
        self.resets = 0
        self.static_mask: npt.NDArray[np.uint8] = np.zeros((0, 0), np.uint8)

    def _prepare(
        self, image: npt.NDArray[np.uint8], grey: npt.NDArray[np.uint8] | None
    ) -> npt.NDArray[np.float32]:
        w = image.shape[1]
        if grey is None or grey.shape[1] != min(WORK_WIDTH, w):
            grey = work_grey(image)
        self._scale = grey.shape[1] / float(w)
        return grey.astype(np.float32)

    def reset(self, grey: npt.NDArray[np.float32], media_s: float) -> None:
        self._fast = grey.copy()
        self._slow = grey.copy()
        self._last_s = media_s
        self.static_mask = np.zeros(grey.shape, np.uint8)

    def update(
        self, image: npt.NDArray[np.uint8], media_s: float, thumb: npt.NDArray[np.uint8] | None = None
    ) -> list[Region]:
        """Feed one frame; returns the regions of new static foreground (and ghosts, `removed`).

        `thumb` is the frame's shared thumbnail (`thumbnail.work_grey`) when the caller made one.
        """
        grey = self._grey = self._prepare(image, thumb)
        if self._fast is None or self._slow is None or self._fast.shape != grey.shape:
            self.reset(grey, media_s)
            return []
        dt = max(0.0, media_s - self._last_s)
        self._last_s = media_s
        grey = self._grey = self._relight(grey, self._slow)
        moving = np.abs(grey - self._fast) > self.diff_level
        if float(moving.mean()) > self.global_change:
            self.resets += 1
            log.info("background: global change at %.1f s, resetting", media_s)
            self.reset(grey, media_s)
            return []
        a_fast = 1.0 - math.exp(-dt / self.fast_tau_s)
        a_slow = 1.0 - math.exp(-dt / self.slow_tau_s)
        self._fast += a_fast * (grey - self._fast)
        new = np.abs(self._fast - self._slow) > self.diff_level
        if float(new.mean()) > self.global_change:
            # a slower global change (a fade of the light over a few seconds)
            self.resets += 1
            log.info("background: global drift at %.1f s, resetting", media_s)
            self.reset(grey, media_s)
            return []
        static = new & ~moving
        # selective update: where something new stands, the slow model keeps the old look
        self._slow += np.where(new, 0.0, a_slow).astype(np.float32) * (grey - self._slow)
        mask = static.astype(np.uint8) * 255
        mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)), np.uint8)
        mask = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)), np.uint8)
        self.static_mask = mask
        return self._regions(mask, grey, moving)

    @staticmethod
    def _relight(grey: npt.NDArray[np.float32], slow: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The frame brought to the slow background's lighting: exposure drift, soft cloud
        shadows and a camera's gain step are smooth in space, an object is not.

        The light ratio frame/background is smoothed with a median over RELIGHT_PX working
        pixels (an object smaller than half the window does not move the median) and divided
        out, as illumination compensation by a smooth gain field does (homomorphic /
        retinex-style normalisation).
        """
        ratio = (grey + 8.0) / (slow + 8.0)
        r8 = np.clip(ratio * 128.0, 1, 255).astype(np.uint8)
        light = cv2.medianBlur(r8, RELIGHT_PX).astype(np.float32) / 128.0
        return np.asarray(np.clip((grey + 8.0) / light - 8.0, 0, 255), dtype=np.float32)

    def _grown(
        self, mask: npt.NDArray[np.uint8], diff: npt.NDArray[np.float32], moving: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.uint8]:
        """`mask` with each of its fragments grown to the object's edges (hysteresis).

        A fragment's pixels differ clearly (`diff_level`); the rest of the object often
        does not: a dark bag on shadowed ground differs by less than that, and the blur of
        the thumbnail spreads every edge. Each fragment grows, within a window of twice its
        size, into the connected pixels that differ by at least half of its own contrast
        (the 90th percentile of its difference; a blurred step's edge lies at half its
        height), never below `diff_level * GROW_FLOOR` nor into moving pixels. A fragment
        never shrinks, so a clear object keeps the box it had.
        """
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        out = mask.copy()
        rows, cols = mask.shape
        for i in range(1, n):
            x, y, w, h, _ = (int(v) for v in stats[i])
            seed = labels[y : y + h, x : x + w] == i
            peak = float(np.percentile(diff[y : y + h, x : x + w][seed], 90))
            level = min(self.diff_level, max(self.diff_level * GROW_FLOOR, EDGE_SHARE * peak))
            if level >= self.diff_level:
                continue
            pad = 2 * max(w, h) + 2
            x1, y1, x2, y2 = max(x - pad, 0), max(y - pad, 0), min(x + w + pad, cols), min(y + h + pad, rows)
            grow = ((diff[y1:y2, x1:x2] >= level) & ~moving[y1:y2, x1:x2]).astype(np.uint8)
            grow[y - y1 : y - y1 + h, x - x1 : x - x1 + w] |= seed.astype(np.uint8)
            _, glabels = cv2.connectedComponents(grow, connectivity=8)
            keep = np.unique(glabels[y - y1 : y - y1 + h, x - x1 : x - x1 + w][seed])
            part = np.isin(glabels, keep[keep > 0])
            out[y1:y2, x1:x2][part] = 255
        return out

    def _regions(
        self, mask: npt.NDArray[np.uint8], grey: npt.NDArray[np.float32], moving: npt.NDArray[np.bool_]
    ) -> list[Region]:
        assert self._fast is not None and self._slow is not None
        diff = np.abs(self._fast - self._slow)
        grown = self._grown(mask, diff, moving)
        # fragments of one object (a bag's creases, a gap the blur left) are labelled together
        near = cv2.dilate(grown, np.ones((2 * MERGE_PX + 1, 2 * MERGE_PX + 1), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(near, connectivity=8)
        if n <= 1:
            return []
        total = float(mask.shape[0] * mask.shape[1])
        inv = 1.0 / self._scale
        g_cur = _gradient(grey)
        g_bg = _gradient(self._slow)
        out: list[Region] = []
        kernel = np.ones((3, 3), np.uint8)
        for i in range(1, n):
            x, y, w, h, _ = (int(v) for v in stats[i])
            mine = labels[y : y + h, x : x + w] == i
            # area and score from the pixels that differ clearly; the box from the grown object
            sys_, sxs = np.nonzero(mine & (mask[y : y + h, x : x + w] > 0))
            ys, xs = np.nonzero(mine & (grown[y : y + h, x : x + w] > 0))
            if len(sxs) == 0:
                continue
            share = len(sxs) / total
            if share > MAX_REGION:
                continue
            x1, y1, x2, y2 = (
                x + int(xs.min()),
                y + int(ys.min()),
                x + int(xs.max()) + 1,
                y + int(ys.max()) + 1,
            )
            # the boundary band of the region, one working pixel either side, inside a padded window
            px1, py1 = max(x1 - 2, 0), max(y1 - 2, 0)
            px2, py2 = min(x2 + 2, mask.shape[1]), min(y2 + 2, mask.shape[0])
            comp = np.zeros((py2 - py1, px2 - px1), np.uint8)
            comp[y + ys - py1, x + xs - px1] = 1
            band = (cv2.dilate(comp, kernel) - cv2.erode(comp, kernel)) > 0
            e_cur = float(g_cur[py1:py2, px1:px2][band].mean()) if band.any() else 0.0
            e_bg = float(g_bg[py1:py2, px1:px2][band].mean()) if band.any() else 0.0
            removed = e_bg >= GHOST_MARGIN * e_cur and e_bg > 0.0
            # over the pixels that differ by diff_level at least (the morphological close also fills
            # in a few that differ less), so the least score is diff_level / 255
            seen = diff[y + sys_, x + sxs]
            strong = seen[seen > self.diff_level]
            score = float((strong if len(strong) else seen).mean()) / 255.0
            if removed:
                # heal the hole: the place looks as it does now, the object is not coming back as "new"
                self._slow[py1:py2, px1:px2][comp > 0] = grey[py1:py2, px1:px2][comp > 0]
                log.debug("background: ghost at %s (edges now %.1f, before %.1f)", (x1, y1), e_cur, e_bg)
            out.append(
                Region((x1 * inv, y1 * inv, x2 * inv, y2 * inv), share, round(min(score, 1.0), 3), removed)
            )
        return out

    def heal(self, xyxy: tuple[float, float, float, float]) -> None:
        """Take the frame's present look into both backgrounds inside `xyxy` (frame pixels):
        what differs there is known not to be a new object (the place one went from)."""
        if self._grey is None or self._slow is None or self._fast is None:
            return
        x1, y1, x2, y2 = self._working_box(xyxy)
        self._slow[y1:y2, x1:x2] = self._grey[y1:y2, x1:x2]
        self._fast[y1:y2, x1:x2] = self._grey[y1:y2, x1:x2]

    def look(self, xyxy: tuple[float, float, float, float]) -> npt.NDArray[np.float32] | None:
        """The present (relit) look of the frame inside `xyxy`, to compare with later (`same_look`)."""
        if self._grey is None:
            return None
        x1, y1, x2, y2 = self._working_box(xyxy)
        return self._grey[y1:y2, x1:x2].copy()

    def same_look(self, xyxy: tuple[float, float, float, float], look: npt.NDArray[np.float32]) -> float:
        """Share of `xyxy`'s pixels that look now as they did in `look` (taken with `look`)."""
        if self._grey is None:
            return 1.0
        x1, y1, x2, y2 = self._working_box(xyxy)
        cur = self._grey[y1:y2, x1:x2]
        if cur.shape != look.shape or cur.size == 0:
            return 1.0
        return float(np.mean(np.abs(cur - look) <= self.diff_level))

    def _working_box(self, xyxy: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        x1, y1 = int(xyxy[0] * self._scale), int(xyxy[1] * self._scale)
        x2 = max(math.ceil(xyxy[2] * self._scale), x1 + 1)
        y2 = max(math.ceil(xyxy[3] * self._scale), y1 + 1)
        return x1, y1, x2, y2

    def matches_background(self, xyxy: tuple[float, float, float, float]) -> bool:
        """Whether the frame's box looks again as the slow background does (what stood there went)."""
        if self._grey is None or self._slow is None:
            return False
        x1, y1, x2, y2 = self._working_box(xyxy)
        cur, slow = self._grey[y1:y2, x1:x2], self._slow[y1:y2, x1:x2]
        if cur.size == 0:
            return False
        return float(np.mean(np.abs(cur - slow) <= self.diff_level)) >= MATCH_BACKGROUND


def _gradient(img: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    return np.asarray(cv2.magnitude(gx, gy), dtype=np.float32)

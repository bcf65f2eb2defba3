"""Evidence clips of a live camera, cut from its pre-roll ring (`sources/packet_ring.py`).

`RingClipCutter` has the interface of replay's `FileClipCutter` (`cut(parts)`, `cut_count`,
`failed`), with the parts in the camera's media seconds (`Frame.media_s`). Without privacy
masks the clip is the camera's own H.264, copied from the ring: each part starts at the key
frame at or before its start, so up to one key-frame interval early. With masks the copied
clip is decoded, the masks blacked out and encoded again (`encode_masked`, as replay does);
if that fails there is no clip: a masked camera's unmasked video never leaves the box.
`ready(end)` says whether the ring has packets past `end` (a clip cut before then would stop
short of it).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import cv2

from edge_agent.core.masks import PrivacyMasks
from edge_agent.pipeline.clips import Clip, ClipError, encode_masked, make_clip, probe_duration
from edge_agent.sources.packet_ring import PacketRing, RingError

logger = logging.getLogger(__name__)


class RingClipCutter:
    live = True  # the video after an alert arrives later: clips wait (pipeline/clip_schedule.py)

    def __init__(self, ring: PacketRing, masks: PrivacyMasks, fps: float) -> None:
        self.ring = ring
        self.masks = masks
        self.fps = fps
        self.ffmpeg = shutil.which("ffmpeg")
        self.ffprobe = shutil.which("ffprobe")
        self.cut_count = 0
        self.failed = 0

    def available(self) -> bool:
        """Clips can be cut: a masked camera needs ffmpeg and ffprobe to burn the masks in."""
        return not self.masks.relative or (self.ffmpeg is not None and self.ffprobe is not None)

    def ready(self, end_media_s: float) -> bool:
        """The ring holds packets past `end_media_s`."""
        span = self.ring.span()
        return span is not None and span[1] >= end_media_s

    def cut(self, parts: list[tuple[float, float]]) -> Clip | None:
        """The clip of `parts`; None (logged, counted) when the ring cannot give it."""
        if not self.available():
            self.failed += 1
            logger.warning(
                "no clip: ffmpeg and ffprobe are needed to burn privacy masks in (apt install ffmpeg)"
            )
            return None
        try:
            with tempfile.TemporaryDirectory(prefix="edge-agent-ring-clip-") as tmp:
                copied = Path(tmp) / "copied.mp4"
                first_s, plays_s = self.ring.copy(parts, copied)
                if not self.masks.relative:
                    clip = make_clip(copied.read_bytes(), first_s, parts, plays_s, self.fps)
                else:
                    clip = self._masked(copied, first_s, plays_s, parts, Path(tmp) / "masked.mp4")
        except (RingError, ClipError, OSError) as err:
            self.failed += 1
            logger.warning("no clip from the ring %s: %s", self.ring.folder, err)
            return None
        self.cut_count += 1
        return clip

    def _masked(
        self, copied: Path, first_s: float, plays_s: float, parts: list[tuple[float, float]], out: Path
    ) -> Clip:
        assert self.ffmpeg is not None and self.ffprobe is not None
        # Every frame of the copied clip, at the camera's own rate (the copy's, not `fps`), so
        # the masked clip lasts as long as the copy.
        cap = cv2.VideoCapture(str(copied))
        frames = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        cap.release()
        rate = frames / plays_s if frames > 0 and plays_s > 0 else self.fps
        encode_masked(copied, [(0.0, plays_s)], self.masks, rate, self.ffmpeg, out)
        return make_clip(out.read_bytes(), first_s, parts, probe_duration(self.ffprobe, out), self.fps)

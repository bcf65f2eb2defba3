"""What one live camera records for its clips: the ring, and who fills it.

With `evidence.clip.record` (the default) every camera keeps a pre-roll ring of its encoded
stream on disk, in `{evidence.dir}/ring/{camera}` (`sources/packet_ring.py`):

- `record_url` unset or equal to `url`: the detection reader itself reads the stream with
  PyAV and gives the ring every packet, so the camera has one RTSP session;
- `record_url` another stream (the main stream beside a detection sub-stream): a
  `RecordOnly` thread demuxes it into the ring, stamping packets with the detection
  reader's media clock, so clips are cut by the times the rules see.

The ring holds twice the longest clip plus `post_s` and the clip schedule's wait, within
`evidence.clip.ring_mb`. A camera that restarts after a fault gets a new ring (its media
clock starts again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.app.recording import RingClipCutter
from edge_agent.core.config import CameraConfig, Config
from edge_agent.core.masks import PrivacyMasks
from edge_agent.pipeline.clip_schedule import GIVE_UP_S
from edge_agent.pipeline.clips import ClipSettings
from edge_agent.sources.packet_ring import PacketRing
from edge_agent.sources.record_only import RecordOnly
from edge_agent.sources.rtsp import RtspSource

MIN_KEEP_S = 60.0


def ring_seconds(cfg: Config, cam: CameraConfig) -> float:
    """How much video the camera's ring keeps: enough for its longest clip window."""
    base = ClipSettings(cfg.evidence.clip.pre_s, cfg.evidence.clip.post_s, cfg.evidence.clip.max_s)
    windows = [base, *(base.for_rule(r.clip) for r in cam.rules)]
    longest = max(2 * s.max_s + s.post_s for s in windows if s.enabled) if windows else 0.0
    return max(MIN_KEEP_S, longest + GIVE_UP_S)


class CameraRecording:
    """A camera's ring, its separate recorder (if any) and the clip cutter over the ring."""

    def __init__(self, cfg: Config, cam: CameraConfig) -> None:
        clip = cfg.evidence.clip
        self.ring = PacketRing(Path(cfg.evidence.dir) / "ring" / cam.id, ring_seconds(cfg, cam), clip.ring_mb)
        self.settings = ClipSettings(clip.pre_s, clip.post_s, clip.max_s)
        self.cutter = RingClipCutter(self.ring, PrivacyMasks(cam.masks), cam.detect.fps)
        self._record_url = cam.record_url if cam.record_url not in (None, cam.url) else None
        self._name = cam.id
        self._open_timeout_s = cam.open_timeout_s
        self._read_timeout_s = cam.read_timeout_s
        self.recorder: RecordOnly | None = None

    @property
    def reader_ring(self) -> PacketRing | None:
        """The ring the detection reader fills itself (None: a recorder of its own does)."""
        return self.ring if self._record_url is None else None

    def start(self, source: RtspSource) -> None:
        """After the reader started: the separate recorder, on the reader's media clock."""
        if self._record_url is not None and self.recorder is None:
            self.recorder = RecordOnly(
                self._record_url, self.ring, source.media_now, name=self._name,
                open_timeout_s=self._open_timeout_s, read_timeout_s=self._read_timeout_s,
            ).start()  # fmt: skip

    def stop(self, timeout_s: float) -> None:
        if self.recorder is not None:
            self.recorder.stop(timeout_s)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.ring.stats(),
            "clips": self.cutter.cut_count,
            "clip_failures": self.cutter.failed,
        }
        if self.recorder is not None:
            out["recorder"] = self.recorder.status
            out["recorder_error"] = self.recorder.last_error
        return out

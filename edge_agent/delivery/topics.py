"""The MQTT topic tree of PRODUCT.md, built in one place."""

from __future__ import annotations

from dataclasses import dataclass

API_VERSION = "v1"


@dataclass(frozen=True)
class Topics:
    prefix: str
    site: str
    device: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{API_VERSION}/{self.site}/{self.device}"

    def event(self, camera: str, rule: str) -> str:
        return f"{self.base}/events/{camera}/{rule}"

    def snapshot(self, event_id: str) -> str:
        return f"{self.base}/snapshots/{event_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    def camera_status(self, camera: str) -> str:
        return f"{self.base}/cameras/{camera}/status"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    @property
    def available(self) -> str:
        """Plain `online` / `offline` (retained), beside the JSON status, for Frigate-style consumers."""
        return f"{self.base}/available"

    def rule_state(self, camera: str, rule: str) -> str:
        """`ON` while any incident of the rule is open, else `OFF` (retained)."""
        return f"{self.base}/rules/{camera}/{rule}/state"

    def latest_snapshot(self, camera: str) -> str:
        """The camera's newest event snapshot, a JPEG (retained)."""
        return f"{self.base}/cameras/{camera}/snapshot"

    def counts(self, camera: str, rule: str) -> str:
        """A `count` rule's aggregate per interval (retained)."""
        return f"{self.base}/counts/{camera}/{rule}"


def all_devices_filter(prefix: str) -> str:
    """Subscription filter for every device's events under a prefix (for platforms)."""
    return f"{prefix}/{API_VERSION}/+/+/events/#"

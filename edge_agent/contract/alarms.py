"""GB/T 28181 video-alarm type codes of the rule kinds (the event's `alarm_type`).

GB/T 28181-2016 (annex A, `AlarmType` with `AlarmMethod` 5, video alarm) numbers the
video-analysis alarms; an event carries the code of its rule's kind, so platforms built
on that standard file it without a mapping table. A street vendor is an intrusion into
the zone (the standard has no vendor code); a count is people flow; camera health has
no video-alarm code (null).
"""

from __future__ import annotations

ALARM_TYPES: dict[str, int] = {
    "left_object": 3,  # 遗留物检测: left object
    "line_cross": 5,  # 绊线检测: tripwire
    "presence": 6,  # 入侵检测: intrusion
    "vendor": 6,  # intrusion (no vendor code in the standard)
    "dwell": 8,  # 徘徊检测: loitering
    "count": 9,  # 流量统计: flow statistics
    "crowd": 10,  # 密度检测: crowd density
}


def alarm_type(kind: str) -> int | None:
    """The GB/T 28181 video-alarm code of rule kind `kind`, None for kinds without one."""
    return ALARM_TYPES.get(kind)

"""Clips in chunks: cut for the clips topic, put together again by `edge-agent listen` through a
real Mosquitto, the sha256 checked against the event's `clip`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random

import pytest

from edge_agent.contract.clips import CHUNK_BYTES, ClipAssembler, chunk_count, split_clip
from edge_agent.contract.schemas import validate
from edge_agent.contract.topics import Topics
from edge_agent.core.types import ClipRef, CropRef, Event, Owner
from tests.broker import Mosquitto, make_event, mosquitto  # noqa: F401  (fixture)
from tests.conftest import FIXTURES
from tests.test_contract import _listen, _raw_publish

TOPICS = Topics("eagleeye", "laohu", "edge-01")
CLIP = (FIXTURES / "scenarios" / "shadow-dump.mp4").read_bytes()  # a real H.264 MP4, > 256 KiB


def with_clip(event: Event, data: bytes) -> Event:
    clip = ClipRef(
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        chunks=chunk_count(len(data)),
        start_media_s=2.0,
        end_media_s=76.0,
        started_at="2026-11-26T08:14:32.400Z",
        duration_s=74.0,
    )
    return dataclasses.replace(event, clip=clip)


@pytest.mark.parametrize(("size", "chunks"), [(0, 1), (1, 1), (CHUNK_BYTES, 1), (CHUNK_BYTES + 1, 2)])
def test_split_sizes(size: int, chunks: int) -> None:
    data = bytes(size)
    parts = list(split_clip(data))
    assert len(parts) == chunks == chunk_count(size)
    assert all(len(p) <= CHUNK_BYTES for p in parts) and b"".join(parts) == data


def test_assembler_takes_chunks_and_event_in_any_order_with_resends() -> None:
    parts = list(split_clip(CLIP))
    assert len(parts) >= 2
    event = with_clip(make_event(1), CLIP).to_dict()
    asm = ClipAssembler()
    order = [*enumerate(parts)] * 2  # every chunk twice
    random.Random(3).shuffle(order)
    done = [asm.add_event(event)]
    done += [asm.add_chunk(event["event_id"], i, p) for i, p in order]
    (clip,) = [d for d in done if d is not None]
    assert clip.ok and clip.data == CLIP
    assert asm.waiting == 0 and asm.duplicates == len(parts)


def test_assembler_is_bounded_and_counts_what_it_gave_up() -> None:
    asm = ClipAssembler(max_pending=2)
    for n in range(5):
        asm.add_chunk(f"e{n}", 0, b"x")
    assert asm.waiting == 2 and asm.dropped == 3


def test_a_damaged_chunk_fails_the_sha256() -> None:
    parts = list(split_clip(CLIP))
    event = with_clip(make_event(1), CLIP).to_dict()
    asm = ClipAssembler()
    asm.add_event(event)
    for i, p in enumerate(parts):
        got = asm.add_chunk(event["event_id"], i, p if i else b"\xff" + p[1:])
    assert got is not None and not got.ok


def test_event_with_clip_owner_and_alarm_type_is_valid() -> None:
    owner = Owner(
        track_id=3,
        label="person",
        xyxy=(10.0, 20.0, 50.0, 120.0),
        frame_size=(640, 480),
        seen_at="2026-11-26T08:14:40.000Z",
        media_s=8.0,
        crop=CropRef(sha256="0" * 64, width=48, height=120),
    )
    event = dataclasses.replace(with_clip(make_event(1), CLIP), alarm_type=3, owner=owner)
    assert validate("event", event.to_dict()) == []
    bad = event.to_dict()
    bad["clip"]["chunks"] = 0
    assert validate("event", bad) != []


def test_listen_puts_a_clip_together_through_mosquitto(mosquitto: Mosquitto, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "evidence"
    proc = _listen("--url", mosquitto.url, "--clips", str(out), "--count", "2", "--timeout", "20")
    good = with_clip(make_event(1), CLIP)
    damaged_bytes = CLIP[:1000]
    damaged = with_clip(make_event(2), damaged_bytes)
    parts = list(split_clip(CLIP))
    items = [(TOPICS.clip(good.event_id, i), p) for i, p in reversed(list(enumerate(parts)))]
    items.insert(1, (TOPICS.event("cam-a", "dumping"), good.to_json().encode()))
    items.append((TOPICS.clip(good.event_id, 0), parts[0]))  # a re-send after the clip was saved
    # the damaged clip's chunk before its event: listen stops at its second event (--count 2)
    items.append((TOPICS.clip(damaged.event_id, 0), b"\xff" + damaged_bytes[1:]))
    items.append((TOPICS.event("cam-a", "dumping"), damaged.to_json().encode()))
    _raw_publish(mosquitto.port, items)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    saved = out / f"{good.event_id}.mp4"
    assert saved.read_bytes() == CLIP
    assert good.clip is not None and hashlib.sha256(saved.read_bytes()).hexdigest() == good.clip.sha256
    assert not (out / f"{damaged.event_id}.mp4").exists()
    assert "1 clips saved, 1 clips damaged" in err
    assert json.loads(json.dumps(good.to_dict()))["clip"]["chunks"] == len(parts)

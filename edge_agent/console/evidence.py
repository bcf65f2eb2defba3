"""An incident's evidence beyond its snapshot: the clip, put together from its chunks, and the
owner crop of a left object.

Writes run inside the ingest's transaction (`store.write_batch`), idempotent like the rest:

- an event that names a `clip` makes the clip's row: the sha256, chunk count, size and
  duration the box announced;
- a chunk waits in `clip_chunks` until its clip is complete; a chunk sent again replaces
  its copy, and one of a clip already complete is a duplicate. Chunks may come before
  their event (another instance of a group took the event, a box sent again) and wait;
- after the batch, each clip it touched whose chunks `0..chunks-1` are all there is
  joined in index order. When the bytes hash to the event's sha256 the MP4 goes into
  `clips.data` (`complete`) and its chunks are deleted; otherwise the clip stays
  incomplete with `sha256_ok` false and the chunks stay, so a chunk sent again can still
  make it whole.

Retention (`retention.days.clips`) empties the MP4 of closed incidents and deletes
chunks whose clip never became complete (`retention.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from edge_agent.console import tables as t
from edge_agent.console.records import ClipChunkRecord, OwnerCropRecord

_API = "/api/incidents"


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


# --- writes (the ingest) ----------------------------------------------------------------


def write_owner_crop(conn: Connection, r: OwnerCropRecord, received_at: float) -> bool:
    """Store an owner crop once; True when it was new."""
    stmt = _insert(conn, t.owner_crops).on_conflict_do_nothing(index_elements=["event_id"])
    row = {"event_id": r.event_id, "site": r.site, "device": r.device, "sha256": r.sha256,
           "size": len(r.jpeg), "jpeg": r.jpeg, "received_at": received_at}  # fmt: skip
    return bool(conn.execute(stmt, row).rowcount > 0)


def write_clip_facts(conn: Connection, event: Mapping[str, Any], received_at: float) -> bool:
    """The clip's row from an event that names one; True when the event names a clip."""
    clip = event.get("clip")
    if not isinstance(clip, Mapping):
        return False
    stmt = _insert(conn, t.clips).on_conflict_do_nothing(index_elements=["event_id"])
    conn.execute(stmt, {
        "event_id": event["event_id"], "site": event["site"], "device": event["device"],
        "sha256": str(clip["sha256"]), "chunks": int(clip["chunks"]), "bytes": int(clip["bytes"]),
        "duration_s": float(clip["duration_s"]) if clip.get("duration_s") is not None else None,
        "complete": False, "sha256_ok": None, "data": None, "received_at": received_at,
    })  # fmt: skip
    return True


def write_chunk(conn: Connection, r: ClipChunkRecord, received_at: float) -> bool:
    """Keep a chunk until its clip is complete; False for a chunk of a clip complete already."""
    cl = t.clips
    done = conn.execute(sa.select(cl.c.complete).where(cl.c.event_id == r.event_id)).scalar()
    if done:
        return False
    ins = _insert(conn, t.clip_chunks)
    stmt = ins.on_conflict_do_update(
        index_elements=["event_id", "idx"],
        set_={"data": ins.excluded.data, "received_at": ins.excluded.received_at},
    )
    conn.execute(stmt, {"event_id": r.event_id, "idx": r.index, "site": r.site, "device": r.device,
                        "data": r.data, "received_at": received_at})  # fmt: skip
    return True


def assemble(conn: Connection, event_ids: Iterable[str], now: float) -> list[str]:
    """Put together every clip of `event_ids` whose chunks are all there; the ids made complete."""
    cl, ch = t.clips, t.clip_chunks
    complete = []
    for event_id in sorted(set(event_ids)):
        row = conn.execute(
            sa.select(cl.c.sha256, cl.c.chunks, cl.c.complete).where(cl.c.event_id == event_id)
        ).first()
        if row is None or row.complete:
            continue
        have = conn.execute(
            sa.select(sa.func.count()).where(ch.c.event_id == event_id, ch.c.idx < row.chunks)
        ).scalar()
        if int(have or 0) < row.chunks:
            continue
        parts = conn.execute(
            sa.select(ch.c.data).where(ch.c.event_id == event_id, ch.c.idx < row.chunks).order_by(ch.c.idx)
        ).scalars()
        data = b"".join(bytes(p) for p in parts)
        ok = hashlib.sha256(data).hexdigest() == row.sha256
        where = cl.c.event_id == event_id
        if not ok:
            conn.execute(sa.update(cl).where(where).values(sha256_ok=False))
            continue
        conn.execute(sa.update(cl).where(where).values(data=data, complete=True, sha256_ok=True,
                                                       completed_at=now))  # fmt: skip
        conn.execute(sa.delete(ch).where(ch.c.event_id == event_id))
        complete.append(event_id)
    return complete


# --- reads (the API) ----------------------------------------------------------------------


def infos(conn: Connection, event_id: str, timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """`clip_info` and `owner_info` of an incident's JSON (None where its events name none)."""
    cl, ch = t.clips, t.clip_chunks
    clip = conn.execute(sa.select(cl).where(cl.c.event_id == event_id)).first()
    clip_info = None
    if clip is not None:
        received = clip.chunks if clip.complete else conn.execute(
            sa.select(sa.func.count()).where(ch.c.event_id == event_id, ch.c.idx < clip.chunks)
        ).scalar()  # fmt: skip
        clip_info = {
            "complete": bool(clip.complete),
            "sha256": clip.sha256,
            "sha256_ok": None if clip.sha256_ok is None else bool(clip.sha256_ok),
            "chunks": int(clip.chunks),
            "chunks_received": int(received or 0),
            "bytes": int(clip.bytes),
            "duration_s": None if clip.duration_s is None else float(clip.duration_s),
            "purged": clip.purged_at is not None,
            "url": f"/api/incidents/{event_id}/clip.mp4"
            if clip.complete and clip.purged_at is None
            else None,
        }
    owner = next((e["event"]["owner"] for e in timeline if isinstance(e["event"].get("owner"), dict)), None)
    owner_info = None
    if owner is not None:
        oc = t.owner_crops
        crop = conn.execute(
            sa.select(oc.c.sha256, oc.c.size, oc.c.purged_at).where(oc.c.event_id == event_id)
        ).first()
        expected = (owner.get("crop") or {}).get("sha256")
        owner_info = {
            "track_id": owner.get("track_id"),
            "label": owner.get("label"),
            "seen_at": owner.get("seen_at"),
            "media_s": owner.get("media_s"),
            "received": crop is not None,
            "size": int(crop.size) if crop is not None else None,
            "sha256_ok": bool(crop is not None and crop.sha256 == expected),
            "purged": bool(crop is not None and crop.purged_at is not None),
            "url": f"/api/incidents/{event_id}/owner.jpg"
            if crop is not None and crop.purged_at is None
            else None,
        }
    return {"clip_info": clip_info, "owner_info": owner_info}


def clip_mp4(conn: Connection, event_id: str) -> bytes | None:
    """The complete clip's MP4, or None (none, not complete yet, or purged)."""
    cl = t.clips
    row = conn.execute(
        sa.select(cl.c.data).where(
            cl.c.event_id == event_id, cl.c.complete.is_(True), cl.c.purged_at.is_(None)
        )
    ).first()
    return None if row is None or row.data is None else bytes(row.data)


def owner_jpeg(conn: Connection, event_id: str) -> bytes | None:
    oc = t.owner_crops
    row = conn.execute(sa.select(oc.c.jpeg, oc.c.purged_at).where(oc.c.event_id == event_id)).first()
    return None if row is None or row.purged_at is not None else bytes(row.jpeg)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range (first, last byte, inclusive) a `Range: bytes=...` header asks of `size` bytes;
    None for the whole (no header, another unit, several ranges: answered 200 in full). Raises
    ValueError when the range cannot be satisfied (answered 416)."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first_s:  # the last N bytes
            n = int(last_s)
            if n <= 0 or size == 0:
                raise ValueError(f"bytes=-{n} of {size} bytes")
            return max(0, size - n), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else size - 1
    except ValueError as err:
        raise ValueError(f"bad range {header[:40]!r}") from err
    if first < 0 or first >= size or last < first:
        raise ValueError(f"range {header[:40]!r} outside {size} bytes")
    return first, min(last, size - 1)

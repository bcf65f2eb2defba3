-- The console's first schema. Written once for both engines: @ID@, @REAL@ and @BLOB@ are
-- replaced by each engine's types (see migrations.py); everything else is shared SQL.
-- Times are kept twice: the RFC 3339 text of the payload, and seconds since the epoch
-- (*_epoch) for sorting and filtering.

-- Every event phase, as received, once: a re-send of the same (event_id, phase, ts) is a
-- duplicate of at-least-once delivery and is dropped by the unique key.
CREATE TABLE events (
    id @ID@,
    event_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    ts TEXT NOT NULL,
    ts_epoch @REAL@ NOT NULL,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    camera TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at @REAL@ NOT NULL,
    CONSTRAINT events_key UNIQUE (event_id, phase, ts)
);
CREATE INDEX events_incident ON events (event_id, ts_epoch);

-- One row per incident (event_id): its lifecycle from the first start to the end, the latest
-- phase's facts, and the duty officer's verdict.
CREATE TABLE incidents (
    event_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    camera TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    zone TEXT,
    label TEXT,
    score @REAL@,
    started_at TEXT NOT NULL,
    started_epoch @REAL@ NOT NULL,
    last_phase TEXT NOT NULL,
    last_ts TEXT NOT NULL,
    last_epoch @REAL@ NOT NULL,
    ended_at TEXT,
    duration_s @REAL@ NOT NULL,
    phases INTEGER NOT NULL,
    objects TEXT NOT NULL,
    snapshot_topic TEXT,
    snapshot_sha256 TEXT,
    verdict TEXT,
    verdict_by TEXT,
    verdict_at TEXT,
    first_received @REAL@ NOT NULL,
    updated_at @REAL@ NOT NULL
);
CREATE INDEX incidents_started ON incidents (started_epoch);
CREATE INDEX incidents_updated ON incidents (updated_at);
CREATE INDEX incidents_place ON incidents (site, device, camera);

-- Every verdict given, who and when; incidents.verdict holds the latest.
CREATE TABLE verdicts (
    id @ID@,
    event_id TEXT NOT NULL,
    verdict TEXT NOT NULL,
    by_user TEXT NOT NULL,
    at TEXT NOT NULL,
    note TEXT
);
CREATE INDEX verdicts_event ON verdicts (event_id);

-- Snapshot JPEGs by the event id in their topic; the first copy is kept. Its sha256 is
-- compared with the one the event names when the event is read.
CREATE TABLE snapshots (
    event_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    topic TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    jpeg @BLOB@ NOT NULL,
    received_at @REAL@ NOT NULL
);

-- Status history: every distinct retained status a box or camera published.
CREATE TABLE device_status (
    id @ID@,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    reason TEXT,
    received_at @REAL@ NOT NULL,
    CONSTRAINT device_status_key UNIQUE (site, device, state, since)
);
CREATE INDEX device_status_latest ON device_status (site, device, received_at);

CREATE TABLE camera_status (
    id @ID@,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    camera TEXT NOT NULL,
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    received_at @REAL@ NOT NULL,
    CONSTRAINT camera_status_key UNIQUE (site, device, camera, state, since)
);
CREATE INDEX camera_status_latest ON camera_status (site, device, camera, received_at);

-- Each box's stats messages (every 30 s); outbox_depth pulled out for the health board.
CREATE TABLE stats (
    id @ID@,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    ts TEXT NOT NULL,
    outbox_depth INTEGER,
    outbox_dropped INTEGER,
    payload TEXT NOT NULL,
    received_at @REAL@ NOT NULL,
    CONSTRAINT stats_key UNIQUE (site, device, ts)
);
CREATE INDEX stats_latest ON stats (site, device, received_at);

-- `count` rule aggregates, stored as received (their payload schema is still to come);
-- a byte-identical re-send is a duplicate.
CREATE TABLE counts (
    id @ID@,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    camera TEXT NOT NULL,
    rule TEXT NOT NULL,
    payload TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    received_at @REAL@ NOT NULL,
    CONSTRAINT counts_key UNIQUE (site, device, camera, rule, payload_sha256)
);

-- Every box seen, with when it was last heard from (any message).
CREATE TABLE devices (
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    first_seen @REAL@ NOT NULL,
    last_seen @REAL@ NOT NULL,
    PRIMARY KEY (site, device)
);

-- Messages that broke the contract (not JSON, schema errors, topic and payload disagreeing):
-- kept for the platform team, acknowledged so they never block the queue.
CREATE TABLE rejected (
    id @ID@,
    topic TEXT NOT NULL,
    error TEXT NOT NULL,
    payload @BLOB@ NOT NULL,
    received_at @REAL@ NOT NULL
);

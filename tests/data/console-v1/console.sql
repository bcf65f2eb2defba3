BEGIN TRANSACTION;
CREATE TABLE camera_status (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    camera TEXT NOT NULL,
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    received_at REAL NOT NULL,
    CONSTRAINT camera_status_key UNIQUE (site, device, camera, state, since)
);
INSERT INTO "camera_status" VALUES(1,'laohu','edge-01','cam-a','online','2026-11-26T08:00:01.000Z',1795680900.0);
INSERT INTO "camera_status" VALUES(2,'laohu','edge-01','bridge','online','2026-11-26T08:00:01.000Z',1795680900.0);
INSERT INTO "camera_status" VALUES(3,'laohu','edge-01','bridge','offline','2026-11-26T08:16:00.000Z',1795681020.0);
CREATE TABLE counts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    camera TEXT NOT NULL,
    rule TEXT NOT NULL,
    payload TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    received_at REAL NOT NULL,
    CONSTRAINT counts_key UNIQUE (site, device, camera, rule, payload_sha256)
);
INSERT INTO "counts" VALUES(1,'laohu','edge-01','bridge','people','{"schema": "eagleeye.count/1", "site": "laohu", "device": "edge-01", "camera": "bridge", "rule": "people", "zone": "bridge", "line": null, "labels": ["person"], "interval_start": "2026-11-26T08:00:00.000Z", "interval_end": "2026-11-26T08:10:00.000Z", "interval_s": 600, "complete": false, "count": 14, "by_label": {"person": 14}, "directions": null, "dwell": null, "media_s": 600.0, "ts": "2026-11-26T08:10:00.100Z"}','f50013fbf769a99643da5647b0f1577ef2b596c7bb481716b4e65f928c7f800d',1795681080.0);
INSERT INTO "counts" VALUES(2,'laohu','edge-01','bridge','people','{"schema": "eagleeye.count/1", "site": "laohu", "device": "edge-01", "camera": "bridge", "rule": "people", "zone": "bridge", "line": null, "labels": ["person"], "interval_start": "2026-11-26T08:00:00.000Z", "interval_end": "2026-11-26T08:10:00.000Z", "interval_s": 600, "complete": true, "count": 17, "by_label": {"person": 17}, "directions": null, "dwell": null, "media_s": 600.0, "ts": "2026-11-26T08:10:00.100Z"}','40bf1f56378e718c94fdf3553ee399d1d4ed4b71fe87a74292149ee27687c8bb',1795681080.0);
INSERT INTO "counts" VALUES(3,'laohu','edge-01','bridge','people','{"schema": "eagleeye.count/1", "site": "laohu", "device": "edge-01", "camera": "bridge", "rule": "people", "zone": "bridge", "line": null, "labels": ["person"], "interval_start": "2026-11-26T08:10:00.000Z", "interval_end": "2026-11-26T08:20:00.000Z", "interval_s": 600, "complete": true, "count": 4, "by_label": {"person": 4}, "directions": null, "dwell": null, "media_s": 600.0, "ts": "2026-11-26T08:20:00.100Z"}','d552faaceb4caeecc10925dfed49973eda4dc46cc391976ba12f288a91cdcbac',1795681080.0);
INSERT INTO "counts" VALUES(4,'laohu','edge-01','bridge','legacy','{"interval_s": 600, "in": 14}','3eb723cefc4df0fbae463249040887e8a256899b5ef49b4e1abb02b66f629320',1795681080.0);
CREATE TABLE device_status (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    reason TEXT,
    received_at REAL NOT NULL,
    CONSTRAINT device_status_key UNIQUE (site, device, state, since)
);
INSERT INTO "device_status" VALUES(1,'laohu','edge-01','online','2026-11-26T08:00:00.000Z','connected',1795680900.0);
INSERT INTO "device_status" VALUES(2,'xiwan','edge-02','online','2026-11-26T08:00:05.000Z','connected',1795680900.0);
INSERT INTO "device_status" VALUES(3,'xiwan','edge-02','offline','2026-11-26T08:00:05.000Z','connection_lost',1795681080.0);
CREATE TABLE devices (
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (site, device)
);
INSERT INTO "devices" VALUES('laohu','edge-01',1795680900.0,1795681080.0);
INSERT INTO "devices" VALUES('xiwan','edge-02',1795680900.0,1795681080.0);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    ts TEXT NOT NULL,
    ts_epoch REAL NOT NULL,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    camera TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL,
    CONSTRAINT events_key UNIQUE (event_id, phase, ts)
);
INSERT INTO "events" VALUES(1,'edge-01-bridge-000003','start','2026-11-26T08:15:03.400Z',1795680903.4,'laohu','edge-01','bridge','dumping','left_object','warning','eagleeye/v1/laohu/edge-01/events/bridge/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-01-bridge-000003", "phase": "start", "site": "laohu", "device": "edge-01", "camera": "bridge", "rule": "dumping", "kind": "left_object", "severity": "warning", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:03.400Z", "ts": "2026-11-26T08:15:03.400Z", "media_s": 3.0, "duration_s": 30.0, "snapshot": null, "details": {"seq": 3}}',1795680960.0);
INSERT INTO "events" VALUES(2,'edge-01-cam-a-000001','start','2026-11-26T08:15:01.400Z',1795680901.4,'laohu','edge-01','cam-a','dumping','left_object','warning','eagleeye/v1/laohu/edge-01/events/cam-a/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-01-cam-a-000001", "phase": "start", "site": "laohu", "device": "edge-01", "camera": "cam-a", "rule": "dumping", "kind": "left_object", "severity": "warning", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:01.400Z", "ts": "2026-11-26T08:15:01.400Z", "media_s": 1.0, "duration_s": 30.0, "snapshot": {"topic": "eagleeye/v1/laohu/edge-01/snapshots/edge-01-cam-a-000001", "sha256": "3677f65ce650d961cb7785a702ed9ea06bfadad824097a45613ddfff4c1a58b4", "width": 1280, "height": 720}, "details": {"seq": 1}}',1795680960.0);
INSERT INTO "events" VALUES(3,'edge-01-cam-a-000002','start','2026-11-26T08:15:02.400Z',1795680902.4,'laohu','edge-01','cam-a','dumping','left_object','alert','eagleeye/v1/laohu/edge-01/events/cam-a/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-01-cam-a-000002", "phase": "start", "site": "laohu", "device": "edge-01", "camera": "cam-a", "rule": "dumping", "kind": "left_object", "severity": "alert", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:02.400Z", "ts": "2026-11-26T08:15:02.400Z", "media_s": 2.0, "duration_s": 30.0, "snapshot": {"topic": "eagleeye/v1/laohu/edge-01/snapshots/edge-01-cam-a-000002", "sha256": "31c49f0a6dc871dd16d3f2d65005332015dd0b8a32d246466992766d8133b2a3", "width": 1280, "height": 720}, "details": {"seq": 2}}',1795680960.0);
INSERT INTO "events" VALUES(4,'edge-01-cam-a-000004','start','2026-11-26T08:15:04.400Z',1795680904.4,'laohu','edge-01','cam-a','dumping','left_object','info','eagleeye/v1/laohu/edge-01/events/cam-a/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-01-cam-a-000004", "phase": "start", "site": "laohu", "device": "edge-01", "camera": "cam-a", "rule": "dumping", "kind": "left_object", "severity": "info", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:04.400Z", "ts": "2026-11-26T08:15:04.400Z", "media_s": 4.0, "duration_s": 30.0, "snapshot": null, "details": {"seq": 4}}',1795680960.0);
INSERT INTO "events" VALUES(5,'edge-02-gate-000005','start','2026-11-26T08:15:05.400Z',1795680905.4,'xiwan','edge-02','gate','dumping','left_object','alert','eagleeye/v1/xiwan/edge-02/events/gate/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-02-gate-000005", "phase": "start", "site": "xiwan", "device": "edge-02", "camera": "gate", "rule": "dumping", "kind": "left_object", "severity": "alert", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:05.400Z", "ts": "2026-11-26T08:15:05.400Z", "media_s": 5.0, "duration_s": 30.0, "snapshot": null, "details": {"seq": 5}}',1795680960.0);
INSERT INTO "events" VALUES(6,'edge-01-bridge-000003','end','2026-11-26T08:16:03.400Z',1795680963.4,'laohu','edge-01','bridge','dumping','left_object','warning','eagleeye/v1/laohu/edge-01/events/bridge/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-01-bridge-000003", "phase": "end", "site": "laohu", "device": "edge-01", "camera": "bridge", "rule": "dumping", "kind": "left_object", "severity": "warning", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:03.400Z", "ts": "2026-11-26T08:16:03.400Z", "media_s": 3.0, "duration_s": 90.0, "snapshot": null, "details": {"seq": 3}}',1795681020.0);
INSERT INTO "events" VALUES(7,'edge-01-cam-a-000001','update','2026-11-26T08:16:01.400Z',1795680961.4,'laohu','edge-01','cam-a','dumping','left_object','warning','eagleeye/v1/laohu/edge-01/events/cam-a/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-01-cam-a-000001", "phase": "update", "site": "laohu", "device": "edge-01", "camera": "cam-a", "rule": "dumping", "kind": "left_object", "severity": "warning", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:01.400Z", "ts": "2026-11-26T08:16:01.400Z", "media_s": 1.0, "duration_s": 90.0, "snapshot": {"topic": "eagleeye/v1/laohu/edge-01/snapshots/edge-01-cam-a-000001", "sha256": "3677f65ce650d961cb7785a702ed9ea06bfadad824097a45613ddfff4c1a58b4", "width": 1280, "height": 720}, "details": {"seq": 1}}',1795681020.0);
INSERT INTO "events" VALUES(8,'edge-01-cam-a-000002','end','2026-11-26T08:17:02.400Z',1795681022.4,'laohu','edge-01','cam-a','dumping','left_object','alert','eagleeye/v1/laohu/edge-01/events/cam-a/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-01-cam-a-000002", "phase": "end", "site": "laohu", "device": "edge-01", "camera": "cam-a", "rule": "dumping", "kind": "left_object", "severity": "alert", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:02.400Z", "ts": "2026-11-26T08:17:02.400Z", "media_s": 2.0, "duration_s": 150.0, "snapshot": null, "details": {"seq": 2}}',1795681020.0);
INSERT INTO "events" VALUES(9,'edge-01-cam-a-000006','start','2026-11-26T08:16:06.400Z',1795680966.4,'laohu','edge-01','cam-a','dumping','left_object','alert','eagleeye/v1/laohu/edge-01/events/cam-a/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-01-cam-a-000006", "phase": "start", "site": "laohu", "device": "edge-01", "camera": "cam-a", "rule": "dumping", "kind": "left_object", "severity": "alert", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:06.400Z", "ts": "2026-11-26T08:16:06.400Z", "media_s": 6.0, "duration_s": 90.0, "snapshot": null, "details": {"seq": 6}}',1795681020.0);
INSERT INTO "events" VALUES(10,'edge-01-cam-a-000001','end','2026-11-26T08:18:01.400Z',1795681081.4,'laohu','edge-01','cam-a','dumping','left_object','warning','eagleeye/v1/laohu/edge-01/events/cam-a/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-01-cam-a-000001", "phase": "end", "site": "laohu", "device": "edge-01", "camera": "cam-a", "rule": "dumping", "kind": "left_object", "severity": "warning", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:01.400Z", "ts": "2026-11-26T08:18:01.400Z", "media_s": 1.0, "duration_s": 210.0, "snapshot": null, "details": {"seq": 1}}',1795681080.0);
INSERT INTO "events" VALUES(11,'edge-02-gate-000005','end','2026-11-26T08:17:05.400Z',1795681025.4,'xiwan','edge-02','gate','dumping','left_object','alert','eagleeye/v1/xiwan/edge-02/events/gate/dumping','{"schema": "eagleeye.event/1", "event_id": "edge-02-gate-000005", "phase": "end", "site": "xiwan", "device": "edge-02", "camera": "gate", "rule": "dumping", "kind": "left_object", "severity": "alert", "zone": "dump-corner", "label": "suitcase", "score": 0.71, "objects": [{"track_id": 17, "label": "suitcase", "score": 0.71, "bbox": [0.12, 0.61, 0.19, 0.74]}], "started_at": "2026-11-26T08:15:05.400Z", "ts": "2026-11-26T08:17:05.400Z", "media_s": 5.0, "duration_s": 150.0, "snapshot": null, "details": {"seq": 5}}',1795681080.0);
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
    score REAL,
    started_at TEXT NOT NULL,
    started_epoch REAL NOT NULL,
    last_phase TEXT NOT NULL,
    last_ts TEXT NOT NULL,
    last_epoch REAL NOT NULL,
    ended_at TEXT,
    duration_s REAL NOT NULL,
    phases INTEGER NOT NULL,
    objects TEXT NOT NULL,
    snapshot_topic TEXT,
    snapshot_sha256 TEXT,
    verdict TEXT,
    verdict_by TEXT,
    verdict_at TEXT,
    first_received REAL NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO "incidents" VALUES('edge-01-bridge-000003','laohu','edge-01','bridge','dumping','left_object','warning','dump-corner','suitcase',0.71,'2026-11-26T08:15:03.400Z',1795680903.4,'end','2026-11-26T08:16:03.400Z',1795680963.4,'2026-11-26T08:16:03.400Z',90.0,2,'[{"track_id":17,"label":"suitcase","score":0.71,"bbox":[0.12,0.61,0.19,0.74]}]',NULL,NULL,'false_alarm','li','2026-11-26T08:40:00.000Z',1795680960.0,1795682400.0);
INSERT INTO "incidents" VALUES('edge-01-cam-a-000001','laohu','edge-01','cam-a','dumping','left_object','warning','dump-corner','suitcase',0.71,'2026-11-26T08:15:01.400Z',1795680901.4,'end','2026-11-26T08:18:01.400Z',1795681081.4,'2026-11-26T08:18:01.400Z',210.0,3,'[{"track_id":17,"label":"suitcase","score":0.71,"bbox":[0.12,0.61,0.19,0.74]}]','eagleeye/v1/laohu/edge-01/snapshots/edge-01-cam-a-000001','3677f65ce650d961cb7785a702ed9ea06bfadad824097a45613ddfff4c1a58b4','confirmed','duty','2026-11-26T08:30:00.000Z',1795680960.0,1795681800.0);
INSERT INTO "incidents" VALUES('edge-01-cam-a-000002','laohu','edge-01','cam-a','dumping','left_object','alert','dump-corner','suitcase',0.71,'2026-11-26T08:15:02.400Z',1795680902.4,'end','2026-11-26T08:17:02.400Z',1795681022.4,'2026-11-26T08:17:02.400Z',150.0,2,'[{"track_id":17,"label":"suitcase","score":0.71,"bbox":[0.12,0.61,0.19,0.74]}]','eagleeye/v1/laohu/edge-01/snapshots/edge-01-cam-a-000002','31c49f0a6dc871dd16d3f2d65005332015dd0b8a32d246466992766d8133b2a3','false_alarm','wang','2026-11-26T08:31:00.000Z',1795680960.0,1795681860.0);
INSERT INTO "incidents" VALUES('edge-01-cam-a-000004','laohu','edge-01','cam-a','dumping','left_object','info','dump-corner','suitcase',0.71,'2026-11-26T08:15:04.400Z',1795680904.4,'start','2026-11-26T08:15:04.400Z',1795680904.4,NULL,30.0,1,'[{"track_id":17,"label":"suitcase","score":0.71,"bbox":[0.12,0.61,0.19,0.74]}]',NULL,NULL,NULL,NULL,NULL,1795680960.0,1795680960.0);
INSERT INTO "incidents" VALUES('edge-02-gate-000005','xiwan','edge-02','gate','dumping','left_object','alert','dump-corner','suitcase',0.71,'2026-11-26T08:15:05.400Z',1795680905.4,'end','2026-11-26T08:17:05.400Z',1795681025.4,'2026-11-26T08:17:05.400Z',150.0,2,'[{"track_id":17,"label":"suitcase","score":0.71,"bbox":[0.12,0.61,0.19,0.74]}]',NULL,NULL,NULL,NULL,NULL,1795680960.0,1795681080.0);
INSERT INTO "incidents" VALUES('edge-01-cam-a-000006','laohu','edge-01','cam-a','dumping','left_object','alert','dump-corner','suitcase',0.71,'2026-11-26T08:15:06.400Z',1795680906.4,'start','2026-11-26T08:16:06.400Z',1795680966.4,NULL,90.0,1,'[{"track_id":17,"label":"suitcase","score":0.71,"bbox":[0.12,0.61,0.19,0.74]}]',NULL,NULL,NULL,NULL,NULL,1795681020.0,1795681020.0);
CREATE TABLE rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    error TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL
);
INSERT INTO "rejected" VALUES(1,'eagleeye/v1/laohu/edge-01/events/cam-a/dumping','not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)',X'7B6E6F74206A736F6E',1795681080.0);
INSERT INTO "rejected" VALUES(2,'eagleeye/v1/laohu/edge-01/status','status schema: (top level): ''since'' is a required property',X'7B227374617465223A2022736C65657079227D',1795681080.0);
CREATE TABLE schema_migrations ( version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
INSERT INTO "schema_migrations" VALUES(1,'initial','2026-12-06T21:20:37Z');
CREATE TABLE snapshots (
    event_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    topic TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    jpeg BLOB NOT NULL,
    received_at REAL NOT NULL
);
INSERT INTO "snapshots" VALUES('edge-01-cam-a-000001','laohu','edge-01','eagleeye/v1/laohu/edge-01/snapshots/edge-01-cam-a-000001','3677f65ce650d961cb7785a702ed9ea06bfadad824097a45613ddfff4c1a58b4',606,X'FFD8FFE06B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49FFD9',1795680960.0);
INSERT INTO "snapshots" VALUES('edge-01-cam-a-000002','laohu','edge-01','eagleeye/v1/laohu/edge-01/snapshots/edge-01-cam-a-000002','31c49f0a6dc871dd16d3f2d65005332015dd0b8a32d246466992766d8133b2a3',606,X'FFD8FFE0D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90DA3A666EEC13AB35D4735E3A265E16EEE03F59718B9B5D03019C07D8B6C51F90FFD9',1795680960.0);
CREATE TABLE stats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    device TEXT NOT NULL,
    ts TEXT NOT NULL,
    outbox_depth INTEGER,
    outbox_dropped INTEGER,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL,
    CONSTRAINT stats_key UNIQUE (site, device, ts)
);
INSERT INTO "stats" VALUES(1,'laohu','edge-01','2026-11-26T08:15:30.000Z',3,0,'{"schema": "eagleeye.stats/1", "ts": "2026-11-26T08:15:30.000Z", "uptime_s": 300, "outbox": {"depth": 3, "bytes": 300, "max_bytes": 1073741824, "dropped_total": 0, "dropped_by_severity": {"info": 0, "warning": 0, "alert": 0}, "recovered_corrupt": false, "oldest_age_s": null}, "mqtt": {"connected": true, "published": 9, "acked": 9, "rejected": 0, "reconnects": 0, "connect_failures": 0, "inflight": 0}}',1795681020.0);
INSERT INTO "stats" VALUES(2,'laohu','edge-01','2026-11-26T08:16:00.000Z',0,0,'{"schema": "eagleeye.stats/1", "ts": "2026-11-26T08:16:00.000Z", "uptime_s": 300, "outbox": {"depth": 0, "bytes": 0, "max_bytes": 1073741824, "dropped_total": 0, "dropped_by_severity": {"info": 0, "warning": 0, "alert": 0}, "recovered_corrupt": false, "oldest_age_s": null}, "mqtt": {"connected": true, "published": 9, "acked": 9, "rejected": 0, "reconnects": 0, "connect_failures": 0, "inflight": 0}}',1795681080.0);
INSERT INTO "stats" VALUES(3,'xiwan','edge-02','2026-11-26T08:16:05.000Z',12,0,'{"schema": "eagleeye.stats/1", "ts": "2026-11-26T08:16:05.000Z", "uptime_s": 300, "outbox": {"depth": 12, "bytes": 1200, "max_bytes": 1073741824, "dropped_total": 0, "dropped_by_severity": {"info": 0, "warning": 0, "alert": 0}, "recovered_corrupt": false, "oldest_age_s": null}, "mqtt": {"connected": true, "published": 9, "acked": 9, "rejected": 0, "reconnects": 0, "connect_failures": 0, "inflight": 0}}',1795681080.0);
CREATE TABLE verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    verdict TEXT NOT NULL,
    by_user TEXT NOT NULL,
    at TEXT NOT NULL,
    note TEXT
);
INSERT INTO "verdicts" VALUES(1,'edge-01-cam-a-000001','confirmed','duty','2026-11-26T08:30:00.000Z',NULL);
INSERT INTO "verdicts" VALUES(2,'edge-01-cam-a-000002','false_alarm','wang','2026-11-26T08:31:00.000Z','a shadow');
INSERT INTO "verdicts" VALUES(3,'edge-01-bridge-000003','confirmed','duty','2026-11-26T08:32:00.000Z',NULL);
INSERT INTO "verdicts" VALUES(4,'edge-01-bridge-000003','false_alarm','li','2026-11-26T08:40:00.000Z','only a bin bag');
CREATE INDEX events_incident ON events (event_id, ts_epoch);
CREATE INDEX incidents_started ON incidents (started_epoch);
CREATE INDEX incidents_updated ON incidents (updated_at);
CREATE INDEX incidents_place ON incidents (site, device, camera);
CREATE INDEX verdicts_event ON verdicts (event_id);
CREATE INDEX device_status_latest ON device_status (site, device, received_at);
CREATE INDEX camera_status_latest ON camera_status (site, device, camera, received_at);
CREATE INDEX stats_latest ON stats (site, device, received_at);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('device_status',3);
INSERT INTO "sqlite_sequence" VALUES('camera_status',3);
INSERT INTO "sqlite_sequence" VALUES('events',11);
INSERT INTO "sqlite_sequence" VALUES('stats',3);
INSERT INTO "sqlite_sequence" VALUES('counts',4);
INSERT INTO "sqlite_sequence" VALUES('rejected',2);
INSERT INTO "sqlite_sequence" VALUES('verdicts',4);
COMMIT;

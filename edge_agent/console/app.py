"""`edge-agent console --config CONSOLE.yaml`: wiring and the command line.

Order at start: config, database (migrations), web page, then the MQTT
subscriber, so the page is up while a backlog drains, and the retention purge.
SIGTERM and Ctrl-C stop the subscriber first; what it had committed stays, what
it had not is sent again by the broker next time.

`--no-mqtt` serves what is stored and changes nothing: no subscriber, no purge,
and every POST is refused (403).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from edge_agent.console import retention
from edge_agent.console.config import ConsoleConfig, load_console_config, read_secret
from edge_agent.console.db import Database, DatabaseError
from edge_agent.console.ingest import Ingest
from edge_agent.console.migrations import migrate
from edge_agent.console.web import ConsoleServer
from edge_agent.core.config import ConfigError, redact

logger = logging.getLogger(__name__)


def open_database(cfg: ConsoleConfig) -> Database:
    password = None
    if cfg.database.password_file:
        password = read_secret(cfg.database.password_file, "database.password_file")
    return Database(cfg.database.url, password)


def _err(text: str) -> None:
    print(f"edge-agent console: {redact(text)}", file=sys.stderr, flush=True)


def _retire(ingest: Ingest, db: Database) -> int:
    try:
        ingest.start()
        ok = ingest.retire()
    finally:
        db.close()
    if not ok:
        why = ingest.last_error or "timeout"
        _err(f"could not drain and delete the session {ingest.cfg.client_id}: {why}")
        return 1
    print(
        f"retired {ingest.cfg.client_id}: {ingest.committed_total} messages stored, session deleted",
        file=sys.stderr,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """CLI code: prints the URL for the operator; everything else goes to the log."""
    try:
        cfg = load_console_config(args.config)
        db = open_database(cfg)
        applied = migrate(db)
    except ConfigError as err:
        for p in err.problems:
            print(redact(str(p)), file=sys.stderr)
        return 1
    except DatabaseError as err:
        _err(str(err))
        return 1
    if applied:
        print(f"database {db.shown}: schema migrated to revision {applied[-1]}", file=sys.stderr)
    if args.migrate_only:
        print(f"database {db.shown}: up to date", file=sys.stderr)
        return 0
    try:
        server = ConsoleServer(cfg, db, read_only=args.no_mqtt)
    except ConfigError as err:
        for p in err.problems:
            _err(str(p))
        return 1
    except ValueError as err:
        _err(str(err))
        return 1
    ingest = None if args.no_mqtt else Ingest(cfg.mqtt, db, limits=cfg.limits, on_commit=server.notify)
    if args.retire and ingest is not None:
        return _retire(ingest, db)
    server.ingest = ingest
    try:
        server.start()
    except OSError as err:
        _err(f"cannot listen on {cfg.web.bind}:{cfg.web.port}: {err.strerror or err}")
        return 1
    print(f"console: open {cfg.web.public_url or server.url}", flush=True)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    purger = None if args.no_mqtt else retention.Purger(db, cfg.retention)
    try:
        if ingest is not None:
            ingest.start()
        if purger is not None:
            purger.start()
        while not done.wait(1.0):
            if ingest is not None and ingest.failed.is_set():
                # Nothing unstored was acknowledged; exit so the service manager restarts us.
                _err(f"ingest stopped: {ingest.last_error}")
                return 1
    except ConfigError as err:
        for p in err.problems:
            _err(str(p))
        return 1
    except OSError as err:  # TLS files (ssl.SSLError is an OSError too)
        _err(f"MQTT TLS setup failed: {err}")
        return 1
    finally:
        if purger is not None:
            purger.stop()
        if ingest is not None:
            ingest.stop()
        server.stop()
        db.close()
    return 0

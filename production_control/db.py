"""SQLite storage of job runs."""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_MS = 5000

SCHEMA = """
CREATE TABLE IF NOT EXISTS job_runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    status TEXT NOT NULL,
    site_name TEXT NOT NULL,
    app_version TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
)
"""

RUN_COLUMNS = ("id", "job", "started_at", "finished_at", "status", "site_name", "app_version", "detail")


def iso_utc(moment: datetime, timespec: str = "milliseconds") -> str:
    """Format an aware datetime as ISO-8601 UTC with a `Z` suffix."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one (e.g. datetime.now(timezone.utc))")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def connect(path: Path) -> sqlite3.Connection:
    """Open the database (creating its directory and schema if missing) in WAL mode.

    The connection is in autocommit mode: writers open their own explicit transaction.
    It may be used from another thread than the one that opened it, one at a time.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def record_run(
    conn: sqlite3.Connection,
    *,
    job: str,
    started_at: datetime,
    finished_at: datetime,
    status: str,
    site_name: str,
    app_version: str,
    detail: str = "",
) -> int:
    """Insert one job run in a single transaction and return its id."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute(
            "INSERT INTO job_runs (job, started_at, finished_at, status, site_name, app_version, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job, iso_utc(started_at), iso_utc(finished_at), status, site_name, app_version, detail),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if cursor.lastrowid is None:
        raise RuntimeError("INSERT into job_runs returned no row id")
    return cursor.lastrowid


def recent_runs(conn: sqlite3.Connection, limit: int = 20) -> list[dict[str, Any]]:
    """Return up to `limit` runs, newest first, as dicts keyed by column name."""
    rows = conn.execute(
        f"SELECT {', '.join(RUN_COLUMNS)} FROM job_runs ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [dict(zip(RUN_COLUMNS, row, strict=True)) for row in rows]


def count_runs(conn: sqlite3.Connection) -> int:
    """Return the number of recorded runs."""
    (count,) = conn.execute("SELECT COUNT(*) FROM job_runs").fetchone()
    return int(count)

"""SQLite storage of job runs."""

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from production_control import db

NOW = datetime(2026, 11, 27, 17, 0, 0, tzinfo=UTC)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = db.connect(tmp_path / "nested" / "runs.db")
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def shared_conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    connection = db.connect(tmp_path_factory.mktemp("shared") / "runs.db")
    yield connection
    connection.close()


def record(conn: sqlite3.Connection, site_name: str = "s", detail: str = "") -> int:
    return db.record_run(
        conn, job="record-run", started_at=NOW, finished_at=NOW, status="ok",
        site_name=site_name, app_version="1.0.0", detail=detail,
    )


def test_connect_creates_directory_and_uses_wal_with_busy_timeout(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "a" / "b" / "runs.db")
    try:
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        (timeout,) = conn.execute("PRAGMA busy_timeout").fetchone()
    finally:
        conn.close()
    assert (mode, timeout) == ("wal", 5000)


def test_reconnecting_keeps_existing_rows(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    first = db.connect(path)
    record(first)
    first.close()

    second = db.connect(path)
    try:
        assert db.count_runs(second) == 1
    finally:
        second.close()


def test_recent_runs_are_newest_first_and_limited(conn: sqlite3.Connection) -> None:
    ids = [record(conn, site_name=f"s{i}") for i in range(5)]

    runs = db.recent_runs(conn, limit=3)

    assert [run["id"] for run in runs] == ids[:1:-1]
    assert runs[0]["started_at"] == "2026-11-27T17:00:00.000Z"
    assert db.count_runs(conn) == 5


def test_failed_write_is_rolled_back(conn: sqlite3.Connection) -> None:
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValueError):
        db.record_run(
            conn, job="j", started_at=naive, finished_at=naive, status="ok", site_name="s", app_version="v",
        )
    assert not conn.in_transaction
    assert db.count_runs(conn) == 0


def test_iso_utc_converts_other_timezones_to_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 11, 27, 19, 0, 0, tzinfo=plus_two)
    assert db.iso_utc(moment, timespec="seconds") == "2026-11-27T17:00:00Z"


@given(site_name=st.text(), detail=st.text())
def test_any_text_round_trips(shared_conn: sqlite3.Connection, site_name: str, detail: str) -> None:
    row_id = record(shared_conn, site_name=site_name, detail=detail)

    (newest,) = db.recent_runs(shared_conn, limit=1)

    assert (newest["id"], newest["site_name"], newest["detail"]) == (row_id, site_name, detail)

"""The cron jobs, run as a real `python -m production_control.jobs` process where it matters."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import production_control
from production_control import db, jobs
from production_control.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ job=record-run status=ok site=x rows=(\d+)$")


def run_jobs_module(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "production_control.jobs", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def read_rows(db_path: Path) -> list[dict[str, object]]:
    conn = db.connect(db_path)
    try:
        return db.recent_runs(conn, limit=100)
    finally:
        conn.close()


def test_record_run_writes_a_row_with_the_site_name(tmp_path: Path, pyproject_version: str) -> None:
    first = run_jobs_module("record-run", DATA_DIR=str(tmp_path), SITE_NAME="x")
    second = run_jobs_module("record-run", DATA_DIR=str(tmp_path), SITE_NAME="x")

    assert (first.returncode, first.stderr) == (0, "")
    match = LOG_LINE.fullmatch(first.stdout.rstrip("\n"))
    assert match is not None and match.group(1) == "1", first.stdout
    assert second.stdout.strip().endswith("rows=2")
    newest, oldest = read_rows(tmp_path / "production_control.db")
    assert newest["site_name"] == "x"
    assert newest["status"] == "ok"
    assert newest["app_version"] == pyproject_version
    assert oldest["detail"].startswith("rows_before=0 ")
    assert newest["detail"].startswith("rows_before=1 ")
    assert str(newest["started_at"]).endswith("Z")
    assert newest["started_at"] <= newest["finished_at"]


def test_unknown_job_exits_2_with_a_one_line_error(tmp_path: Path) -> None:
    result = run_jobs_module("no-such-job", DATA_DIR=str(tmp_path))

    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "no-such-job" in result.stderr and "record-run" in result.stderr
    assert not (tmp_path / "production_control.db").exists()


def test_missing_job_name_exits_2() -> None:
    result = jobs.main([])
    assert result == 2


def test_unwritable_data_dir_fails_with_one_error_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("")

    result = run_jobs_module("record-run", DATA_DIR=str(not_a_dir / "data"), SITE_NAME="x")

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "job=record-run status=error" in result.stderr


def test_sigterm_before_the_write_leaves_no_row(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert jobs.record_run_job(settings, stop_requested=lambda: True) == 0

    assert read_rows(settings.db_path) == []
    assert "status=cancelled" in capsys.readouterr().out


def test_sigterm_is_recorded_instead_of_killing_the_process() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    flag = jobs.SigtermFlag()
    try:
        flag.install()
        os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert flag.received


def test_version_is_read_from_pyproject(tmp_path: Path, pyproject_version: str) -> None:
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\nname = "x"\nversion = "9.8.7"\n')

    assert production_control.__version__ == pyproject_version
    assert production_control.read_version(other) == "9.8.7"
    assert production_control.read_version(tmp_path / "missing.toml") == "0+unknown"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("plant-a", "site=plant-a"), ("plant a", 'site="plant a"'), ("", 'site=""'), ('a"b', 'site="a\\"b"')],
)
def test_log_line_quotes_values_that_would_break_parsing(value: str, expected: str) -> None:
    line = jobs.log_line("record-run", "ok", site=value)
    assert line.endswith(f"job=record-run status=ok {expected}")


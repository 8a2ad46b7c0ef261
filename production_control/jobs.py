"""Cron jobs, run as `python -m production_control.jobs <job-name>`.

Each run prints one log line to stdout. SIGTERM never leaves a partial row: a job
that has started its write finishes it, one that has not skips it; both exit 0.
"""

import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType

from production_control import __version__, db
from production_control.settings import Settings

StopRequested = Callable[[], bool]
Job = Callable[[Settings, StopRequested], int]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def log_line(job: str, status: str, **fields: object) -> str:
    """Format one `<utc time> job=... status=... key=value ...` line; values with spaces are quoted."""
    now = db.iso_utc(datetime.now(UTC), timespec="seconds")
    pairs = {"job": job, "status": status, **fields}
    return " ".join([now] + [f"{key}={_log_value(value)}" for key, value in pairs.items()])


def _log_value(value: object) -> str:
    text = str(value)
    if text == "" or any(c.isspace() or c in "\"=" for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def record_run_job(settings: Settings, stop_requested: StopRequested) -> int:
    """Record this run (site name, app version, table size) as a row of job_runs."""
    started_at = datetime.now(UTC)
    conn = db.connect(settings.db_path)
    try:
        rows_before = db.count_runs(conn)
        db_bytes = settings.db_path.stat().st_size
        if stop_requested():
            print(log_line("record-run", "cancelled", site=settings.site_name, rows=rows_before), flush=True)
            return EXIT_OK
        db.record_run(
            conn,
            job="record-run",
            started_at=started_at,
            finished_at=datetime.now(UTC),
            status="ok",
            site_name=settings.site_name,
            app_version=__version__,
            detail=f"rows_before={rows_before} db_bytes={db_bytes}",
        )
        rows = db.count_runs(conn)
    finally:
        conn.close()
    print(log_line("record-run", "ok", site=settings.site_name, rows=rows), flush=True)
    return EXIT_OK


JOBS: dict[str, Job] = {"record-run": record_run_job}


class SigtermFlag:
    """Remembers that SIGTERM arrived instead of letting it kill the process mid-write."""

    def __init__(self) -> None:
        self.received = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.received = True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job named by the single argument; return the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    valid = ", ".join(sorted(JOBS))
    if len(args) != 1:
        print(f"usage: python -m production_control.jobs JOB (valid jobs: {valid})", file=sys.stderr)
        return EXIT_USAGE
    name = args[0]
    job = JOBS.get(name)
    if job is None:
        print(f"unknown job {name!r}; valid jobs: {valid}", file=sys.stderr)
        return EXIT_USAGE

    sigterm = SigtermFlag()
    sigterm.install()
    settings = Settings.from_env()
    try:
        return job(settings, lambda: sigterm.received)
    except (sqlite3.Error, OSError) as error:
        print(log_line(name, "error", site=settings.site_name, detail=error), file=sys.stderr, flush=True)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

"""Availability figures the zero-downtime tests measure, saved to a results file (never to docs/).

Each test that sends load through a release records its summary under a fixed key
(RELEASES). The file, `zero-downtime.json` in $PRODUCTION_CONTROL_RESULTS_DIR (default
benchmarks/results/tests/, git-ignored), keeps each key's latest figures, with the date,
the commit and whether the tree had uncommitted changes. Publishing them into
docs/operations.md is an explicit step:
`.venv/bin/python -m benchmarks.run --render benchmarks/results/tests/zero-downtime.json --publish`.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from testbed import REPO_ROOT

# key -> how docs/operations.md names it, in table order.
RELEASES = {
    "code": "code-only release",
    "crash": "crashes at import",
    "healthz500": "`/healthz` answers 500",
    "hang": "hangs at start",
    "root500": "healthy on `/healthz`, 500 on `/` (switched back by the watch window)",
    "rollback": "`invoke rollback`",
    "legacy-move": "single-container layout moved to the proxy (once)",
}


def results_path() -> Path:
    directory = Path(os.environ.get("PRODUCTION_CONTROL_RESULTS_DIR") or REPO_ROOT / "benchmarks" / "results" / "tests")
    return directory / "zero-downtime.json"


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True).stdout.strip()


def record(key: str, summary: dict, rate: int, **facts: object) -> Path:
    """Save one test's load summary (requests, failed, unavailable_seconds, answers) under `key`."""
    if key not in RELEASES:
        raise ValueError(f"unknown release kind {key!r}: add it to RELEASES")
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    document = json.loads(path.read_text()) if path.exists() else {"kind": "zero-downtime", "releases": RELEASES, "results": {}}
    document["releases"] = RELEASES
    document["results"][key] = {
        **summary, **facts, "rate_per_second": rate,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "engine": platform.release(),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path

"""Figures the integration tests measure, saved to results files (never to docs/).

A test records its figures under a fixed key of a kind of results (KINDS): the
zero-downtime tests their availability per kind of release, the classic-store builder
tests what a server pulls per builder scenario, the operations tests the disk of a
host under retention. Each kind has one file, `<kind>.json` in
$PRODUCTION_CONTROL_RESULTS_DIR (default benchmarks/results/tests/, git-ignored),
which keeps each key's latest figures with the date, the commit and whether the tree
had uncommitted changes. Publishing them into the docs is an explicit step:
`.venv/bin/python -m benchmarks.run --render benchmarks/results/tests/<kind>.json --publish`.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from tests.integration.support.testbed import REPO_ROOT

# kind -> {key: how the docs name it}, in table order.
KINDS = {
    "zero-downtime": {
        "code": "code-only release",
        "crash": "crashes at import",
        "healthz500": "`/healthz` answers 500",
        "hang": "hangs at start",
        "root500": "healthy on `/healthz`, 500 on `/` (switched back by the watch window)",
        "crashloop": "healthy, then crash-loops after the switch (switched back by the watch window)",
        "proxy-reload": "a release with a changed proxy configuration (reloaded in place)",
        "rollback": "`invoke rollback`",
        "legacy-move": "single-container layout moved to the proxy (once)",
    },
    "builders": {
        "code": "code-only release",
        "rebuild-app": "same commit, app rebuilt without cache (CI rerun)",
        "rebuild-clean": "same commit, deps + app rebuilt without cache (clean builder)",
    },
    "swarm": {
        "code": "code-only, rolled through the web tasks",
        "rollback": "`invoke rollback` (Swarm's rollback of web, then cron)",
        "crash": "crashes at start",
        "layer": "a new 24 MiB layer, plain",
        "layer-pre-pull": "the same kind, `deploy.pre_pull`",
        "node-killed": "code-only, node 3's engine killed (SIGKILL) mid-update",
        "proxy-update": "the proxy's definition changed (its memory limit): replaced stop-first, node after node",
        "compose": "code-only, `deploy.mode: compose`, the 3 engines host by host",
    },
    "retention": {
        "deploys": "the disk after each deploy (keep_releases 3)",
        "prune": "`invoke prune --keep 1` by hand",
    },
}


def results_path(kind: str) -> Path:
    directory = Path(os.environ.get("PRODUCTION_CONTROL_RESULTS_DIR") or REPO_ROOT / "benchmarks" / "results" / "tests")
    return directory / f"{kind}.json"


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True).stdout.strip()


def record(kind: str, key: str, figures: dict) -> Path:
    """Save one test's figures under `key` of the results file of `kind`."""
    if key not in KINDS.get(kind, {}):
        raise ValueError(f"unknown {kind!r} results key {key!r}: add it to KINDS")
    path = results_path(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = json.loads(path.read_text()) if path.exists() else {"kind": kind, "results": {}}
    document["titles"] = KINDS[kind]
    document["results"][key] = {
        **figures,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "kernel": platform.release(),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path

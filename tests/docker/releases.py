"""The faulty (and good) releases the fault tests and the availability benchmark build.

Each recipe changes a clone's work tree; the caller commits it and builds the app image.
Pure file edits, no Docker: `benchmarks/availability.py` imports this file too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

HEALTHZ_OK = '    db.count_runs(conn)\n    return {"status": "ok"'
HEALTHZ_500 = '    return JSONResponse({"status": "broken"}, status_code=500)\n    return {"status": "ok"'
INDEX_DOC = '    """An HTML overview: version, dependency image and recent job runs."""\n'
INDEX_500 = '    return HTMLResponse("fault test: this release answers 500 on /", status_code=500)\n'
WEB_IMPORTS = "from production_control.settings import Settings\n"


def _replace_once(repo: Path, old: str, new: str) -> None:
    path = repo / "production_control/web.py"
    text = path.read_text()
    assert text.count(old) == 1, f"web.py changed: update the anchor {old.strip()!r} in tests/docker/releases.py"
    path.write_text(text.replace(old, new))


def _after_web_imports(repo: Path, code: str) -> None:
    _replace_once(repo, WEB_IMPORTS, WEB_IMPORTS + code)


def _crash_at_import(repo: Path) -> None:
    _after_web_imports(repo, 'raise RuntimeError("fault test: this release cannot start")\n')


def _healthz_500(repo: Path) -> None:
    _replace_once(repo, HEALTHZ_OK, HEALTHZ_500)


def _root_500(repo: Path) -> None:
    """/healthz still answers 200; the page everyone uses (GET /) answers 500."""
    _replace_once(repo, INDEX_DOC, INDEX_DOC + INDEX_500)


def _slow_start(repo: Path) -> None:
    _after_web_imports(repo, "import time\ntime.sleep(8)  # fault test: slow to become healthy\n")


def _hang_at_start(repo: Path) -> None:
    _after_web_imports(repo, "import time\nwhile True:  # fault test: never becomes healthy\n    time.sleep(3600)\n")


def _code_change(repo: Path) -> None:
    with (repo / "production_control/jobs.py").open("a") as f:
        f.write(f"# fault test: a code-only release {uuid.uuid4().hex}\n")


def _ballast(megabytes: int) -> Callable[[Path], None]:
    """A release with one large new layer: random (incompressible) bytes in the code."""

    def change(repo: Path) -> None:
        (repo / "production_control" / f"ballast-{megabytes}m.bin").write_bytes(os.urandom(megabytes << 20))

    return change


RELEASES: dict[str, Callable[[Path], None]] = {
    "good": lambda repo: None,  # the clone as it is
    "second": _code_change,
    "crash": _crash_at_import,
    "healthz500": _healthz_500,
    "root500": _root_500,
    "slow": _slow_start,
    "hang": _hang_at_start,
    "big": _ballast(160),  # pulled for a few seconds: long enough to kill the registry in the middle
    "medium": _ballast(24),  # more than a full disk has left
}

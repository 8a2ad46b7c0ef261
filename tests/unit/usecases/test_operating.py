"""run-job over faked hosts: each host in turn, the first non-zero exit code stops and is reported."""

import contextlib
from types import SimpleNamespace
from typing import Any

import pytest

from delivery.reporting import Recorded
from delivery.usecases import operating


def test_the_first_failing_host_stops_run_job(monkeypatch: pytest.MonkeyPatch) -> None:
    @contextlib.contextmanager
    def opened(host: Any, config: Any):
        yield SimpleNamespace(host=host)

    ran = []

    def run_job(target: Any, name: str, say: Any) -> int:
        ran.append(target.host.label)
        say.step(f"{target.host.label}: running {name}")
        return 3 if target.host.label == "deploy@b" else 0

    monkeypatch.setattr(operating, "opened", opened)
    monkeypatch.setattr(operating.jobs, "run_job", run_job)
    reporter = Recorded()
    assert operating.run_job({}, ["ssh://deploy@a", "ssh://deploy@b", "ssh://deploy@c"], "record-run", reporter=reporter) == 3
    assert ran == ["deploy@a", "deploy@b"]
    assert reporter.lines == ["deploy@a: running record-run", "deploy@b: running record-run", "deploy@b: job record-run exited with code 3"]

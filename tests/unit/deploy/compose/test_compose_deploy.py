"""The per-host deploy: what its report says when the handover fails (the previous release still serves), when
only cron fails (the web switch stays), and when it works; the pull and the handover faked."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import pytest

from delivery.deploy.compose import handover as deploying
from delivery.errors import CronFailed, HandoverFailed
from delivery.release.pullreport import EngineDownload, PullPlan
from delivery.release.release import Release, Variant
from delivery.reporting import Recorded

DIGEST = "sha256:" + "a" * 64
TAG = "2.0.0-abcdef123456"


def _release() -> Release:
    manifest = SimpleNamespace(digest=DIGEST, index_digest=None)
    return Release(TAG, f"localhost:5000/production-control:{TAG}", DIGEST, (Variant("linux/amd64", manifest, ()),))  # type: ignore[arg-type]


def _deploy(monkeypatch: pytest.MonkeyPatch, outcome: BaseException | None, live: str | None = "1.0.0-abcdef123456") -> tuple[Any, Recorded]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(deploying, "predict_pull", lambda target, variant, image: PullPlan(image, DIGEST, "overlay2", 3, 1, 300, 100, ()))
    monkeypatch.setattr(deploying, "pull", lambda target, release, reporter: (1.5, EngineDownload(1, 90)))
    monkeypatch.setattr(deploying, "pulled_pin", lambda target, release, variant: f"{TAG}@{DIGEST}")
    monkeypatch.setattr(deploying, "deploy_lock", lambda *args: contextlib.nullcontext())
    monkeypatch.setattr(deploying, "site_of", lambda target: SimpleNamespace(live_tag=live))
    monkeypatch.setattr(deploying, "prune_after_deploy", lambda target, reporter: {"pruned": []})

    def handover(target: Any, site: Any, tag: str, report: Any, reporter: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        report.seconds_to_healthy = 2.0
        if outcome is not None:
            raise outcome
        return SimpleNamespace(image="sha256:" + "c" * 64)

    monkeypatch.setattr(deploying, "handover", handover)
    target = SimpleNamespace(info=SimpleNamespace(platform="linux/amd64"), host=SimpleNamespace(label="h1"), host_arg="local",
                             docker=None, config=SimpleNamespace(compose_project="p", lock_wait=0))
    said = Recorded()
    report = deploying.deploy(target, _release(), said)  # type: ignore[arg-type]
    assert seen["pin"] == f"{TAG}@{DIGEST}" and seen["digests"] == frozenset({DIGEST}) and seen["platform"] == "linux/amd64"
    return report, said


def test_a_deploy_that_works_reports_its_pull_and_is_live(monkeypatch: pytest.MonkeyPatch) -> None:
    report, said = _deploy(monkeypatch, None)
    assert (report.healthy, report.error, report.previous, report.pruned) == (True, None, "1.0.0-abcdef123456", {"pruned": []})
    assert (report.predicted_layers, report.total_layers, report.measured_layers, report.pull_seconds) == (1, 3, 1, 1.5)
    assert said.lines == [f"h1: pulling {TAG} for linux/amd64 (1/3 layers to download)", f"h1: {TAG} is live (healthy after 2.0s)"]


def test_a_failed_handover_says_the_previous_release_still_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    report, _ = _deploy(monkeypatch, HandoverFailed(f"{TAG} failed on h1: its healthcheck failed"))
    assert (report.healthy, report.rolled_back) == (False, True)
    assert report.error == f"{TAG} failed on h1: its healthcheck failed; 1.0.0-abcdef123456 is still serving"


def test_a_failed_first_deploy_has_nothing_to_roll_back_to(monkeypatch: pytest.MonkeyPatch) -> None:
    report, _ = _deploy(monkeypatch, HandoverFailed(f"{TAG} failed on h1: its healthcheck failed"), live=None)
    assert (report.rolled_back, report.error) == (False, f"{TAG} failed on h1: its healthcheck failed")


def test_a_cron_failure_is_reported_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    report, _ = _deploy(monkeypatch, CronFailed("cron of 2.0.0 failed on h1: x"))
    assert (report.healthy, report.rolled_back, report.error) == (False, False, "cron of 2.0.0 failed on h1: x")

"""The compose Deployer: host by host over handover's entry points (faked here), with the run's login and Reporter."""

import contextlib
from types import SimpleNamespace
from typing import Any

import pytest

from delivery.config.hosts import parse_host
from delivery.config.settings import DeployConfig
from delivery.deploy.compose import deployer as compose_deployer
from delivery.deploy.compose.deployer import ComposeDeployer
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.reports import HostStatus, PullPrediction
from delivery.errors import DeliveryError, DeployFailed
from delivery.release.pullreport import PullPlan
from delivery.reporting import Recorded

HOSTS = [parse_host(f"ssh://deploy@prod-{n}") for n in (1, 2)]
PLAN = PullPlan("r/production-control:1.0.1-aaaaaaaaaaaa", "sha256:1", "overlay2", 9, 2, 60_000_000, 1_000, ("sha256:l9",))


class FakeRelease:
    image = "r/production-control:1.0.1-aaaaaaaaaaaa"

    def __init__(self, platforms: tuple[str, ...] = ("linux/amd64",)) -> None:
        self.platforms = platforms

    def variant(self, platform: str, host: str) -> SimpleNamespace:
        if platform not in self.platforms:
            raise DeliveryError(f"the image has no {platform} for host {host}")
        return SimpleNamespace(platform=platform)


@contextlib.contextmanager
def opened(host):
    yield SimpleNamespace(host=host, info=SimpleNamespace(platform="linux/amd64"), docker=f"docker of {host.label}")


@pytest.fixture
def logins() -> list[str]:
    return []


@pytest.fixture
def reporter() -> Recorded:
    return Recorded()


@pytest.fixture
def deployer(logins: list[str], reporter: Recorded) -> ComposeDeployer:
    def registry() -> Any:
        return "registry"

    return ComposeDeployer(DeployConfig(), HOSTS, registry, logins.append, reporter, opened)


def healthy(target: Any, say: Any) -> DeployReport:
    say.step(f"{target.host.label}: switched")
    return DeployReport(host=target.host.label, image=FakeRelease.image, version="1.0.1-aaaaaaaaaaaa", digest="sha256:1", healthy=True)


def test_deploy_logs_each_host_in_then_hands_over_with_the_reporter(
        deployer: ComposeDeployer, logins: list[str], reporter: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose_deployer.handover, "deploy", lambda target, release, say: healthy(target, say))
    reports = deployer.deploy(FakeRelease())
    assert [r.host for r in reports] == ["deploy@prod-1", "deploy@prod-2"]
    assert logins == ["docker of deploy@prod-1", "docker of deploy@prod-2"]
    assert reporter.lines == ["deploy@prod-1: switched", "deploy@prod-2: switched"]


def test_deploy_refuses_a_release_without_the_hosts_platform_before_any_login(
        deployer: ComposeDeployer, logins: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose_deployer.handover, "deploy", lambda target, release, say: pytest.fail("no deploy"))
    with pytest.raises(DeliveryError, match="has no linux/amd64"):
        deployer.deploy(FakeRelease(platforms=("linux/arm64",)))
    assert logins == []


def test_an_unhealthy_second_host_fails_with_both_reports(deployer: ComposeDeployer, monkeypatch: pytest.MonkeyPatch) -> None:
    def deploy(target: Any, release: Any, say: Any) -> DeployReport:
        report = healthy(target, say)
        if target.host.label == "deploy@prod-2":
            report.healthy, report.error = False, "its healthcheck failed"
        return report

    monkeypatch.setattr(compose_deployer.handover, "deploy", deploy)
    with pytest.raises(DeployFailed, match="its healthcheck failed") as failed:
        deployer.deploy(FakeRelease())
    assert [r["healthy"] for r in failed.value.reports] == [True, False]


def test_predict_changes_nothing_and_logs_nothing_in(deployer: ComposeDeployer, logins: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose_deployer, "predict_pull", lambda target, variant, image: PLAN)
    monkeypatch.setattr(compose_deployer.handover, "deploy", lambda *args: pytest.fail("a dry run deploys nothing"))
    predictions = deployer.predict(FakeRelease())
    assert predictions == [PullPrediction("deploy@prod-1", "linux/amd64", PLAN), PullPrediction("deploy@prod-2", "linux/amd64", PLAN)]
    assert predictions[0].as_dict() == {"host": "deploy@prod-1", "platform": "linux/amd64", **PLAN.prediction(), "dry_run": True}
    assert logins == []


def test_rollback_passes_the_tag_through(deployer: ComposeDeployer, logins: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def rollback(target: Any, say: Any, to: str | None) -> DeployReport:
        calls.append((target.host.label, to))
        return healthy(target, say)

    monkeypatch.setattr(compose_deployer.handover, "rollback", rollback)
    assert [r.host for r in deployer.rollback("1.0.0-bbbbbbbbbbbb")] == ["deploy@prod-1", "deploy@prod-2"]
    assert calls == [("deploy@prod-1", "1.0.0-bbbbbbbbbbbb"), ("deploy@prod-2", "1.0.0-bbbbbbbbbbbb")]
    assert len(logins) == 2


def test_status_adds_the_releases_and_the_deps_freshness(deployer: ComposeDeployer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose_deployer.handover, "status", lambda target: {"host": target.host.label, "running": None})
    monkeypatch.setattr(compose_deployer.retention, "usage", lambda target: {"count": 1, "keep_releases": 5, "bytes": 10})
    entries = deployer.status()
    assert entries == [HostStatus({"host": h.label, "running": None, "releases": {"count": 1, "keep_releases": 5, "bytes": 10}})
                       for h in HOSTS]
    assert entries[0].as_dict() == {"host": "deploy@prod-1", "running": None, "releases": {"count": 1, "keep_releases": 5, "bytes": 10}}


def test_the_freshness_of_the_running_image_is_read_from_its_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    image = SimpleNamespace(config=SimpleNamespace(labels={"l": "v"}, env=["E=1"]))
    target = SimpleNamespace(docker=SimpleNamespace(image=SimpleNamespace(inspect=lambda ref: image)))
    seen = []

    def freshness(labels: Any, env: Any, registry: Any) -> dict[str, Any]:
        seen.append((labels, env, registry))
        return {"newer": None}

    monkeypatch.setattr(compose_deployer.refresh, "deps_freshness", freshness)
    entry = compose_deployer.with_freshness(target, {"running": {"image": "r/i:t"}}, "registry")
    assert entry["deps"] == {"newer": None} and seen == [({"l": "v"}, ["E=1"], "registry")]

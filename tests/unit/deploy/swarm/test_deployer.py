"""The swarm Deployer: one manager, rollout's entry points (faked here), a failed report as DeployFailed."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from delivery.config.hosts import parse_host
from delivery.config.settings import DeployConfig
from delivery.deploy.reports import SwarmStatus
from delivery.deploy.swarm import deployer as swarm_deployer
from delivery.deploy.swarm.deployer import SwarmDeployer, swarm_run
from delivery.deploy.swarm.measure import SwarmReport
from delivery.errors import DeliveryError, DeployFailed
from delivery.reporting import Recorded

MANAGER = parse_host("ssh://deploy@manager")
RELEASE = SimpleNamespace(tag="1.0.1-aaaaaaaaaaaa")


def report(**fields: Any) -> SwarmReport:
    return SwarmReport(**{"manager": "deploy@manager", "stack": "pc", "image": "r/pc:1.0.1-aaaaaaaaaaaa",
                          "version": "1.0.1-aaaaaaaaaaaa", "digest": "sha256:1", **fields})


@pytest.fixture(autouse=True)
def cli(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    checked: list[str] = []
    monkeypatch.setattr(swarm_deployer, "require_cli", lambda: checked.append("cli"))
    return checked


@pytest.fixture
def reporter() -> Recorded:
    return Recorded()


def deployer(reporter: Recorded, hosts: list[Any] | None = None) -> SwarmDeployer:
    def registry() -> Any:
        return "registry"

    return SwarmDeployer(DeployConfig(mode="swarm"), [MANAGER] if hosts is None else hosts, Path("/repo"), registry,
                         lambda docker: None, reporter)


@pytest.mark.parametrize("dry_run", [False, True])
def test_deploy_and_predict_run_the_rollout_through_the_manager(reporter: Recorded, monkeypatch: pytest.MonkeyPatch, dry_run: bool) -> None:
    calls = []

    def deploy(host: Any, config: Any, root: Path, release: Any, reporter: Any, dry_run: bool, login: Any) -> SwarmReport:
        calls.append((host, root, release, dry_run))
        reporter.step("rolling")
        return report(healthy=True)

    monkeypatch.setattr(swarm_deployer.rollout, "deploy", deploy)
    strategy = deployer(reporter)
    result = strategy.predict(RELEASE) if dry_run else strategy.deploy(RELEASE)
    assert result == [report(healthy=True)]
    assert calls == [(MANAGER, Path("/repo"), RELEASE, dry_run)]
    assert reporter.lines == ["rolling"]


def test_a_failed_rollout_is_deploy_failed_with_its_report(reporter: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm_deployer.rollout, "deploy", lambda *args, **kwargs: report(error="the update rolled back"))
    with pytest.raises(DeployFailed, match="the update rolled back") as failed:
        deployer(reporter).deploy(RELEASE)
    assert failed.value.reports == [report(error="the update rolled back").as_dict()]
    assert failed.value.reports[0]["mode"] == "swarm"


def test_rollback_to_a_tag_deploys_that_release(reporter: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    resolved = []
    monkeypatch.setattr(swarm_deployer, "resolve_release", lambda registry, config, tag: resolved.append((registry, tag)) or RELEASE)
    monkeypatch.setattr(swarm_deployer.rollout, "deploy", lambda host, config, root, release, say, dry_run, login: report(healthy=True))
    monkeypatch.setattr(swarm_deployer.rollout, "rollback", lambda *args: pytest.fail("Swarm's rollback goes back one step only"))
    assert deployer(reporter).rollback("1.0.0-bbbbbbbbbbbb") == [report(healthy=True)]
    assert resolved == [("registry", "1.0.0-bbbbbbbbbbbb")]


def test_rollback_without_a_tag_is_swarms_own(reporter: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm_deployer.rollout, "rollback", lambda host, config, say: report(healthy=True, update_state="rolled back"))
    assert deployer(reporter).rollback(None)[0].update_state == "rolled back"


def test_status_is_one_entry_for_the_stack(reporter: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"mode": "swarm", "host": "deploy@manager", "stack": "pc", "nodes": {}, "services": {}}
    monkeypatch.setattr(swarm_deployer.rollout, "status", lambda host, config: entry)
    assert deployer(reporter).status() == [SwarmStatus(entry)]


def test_swarm_wants_exactly_one_manager(cli: list[str]) -> None:
    with pytest.raises(DeliveryError, match="give one manager with --host .* not 2 hosts"):
        swarm_run([MANAGER, MANAGER], lambda host: pytest.fail("nothing runs"))
    assert cli == []
    assert swarm_run([MANAGER], lambda host: host.label) == "deploy@manager"
    assert cli == ["cli"]

"""The release runbooks over a faked Deployer: which method runs, inside the run's login scope, with which Reporter."""

import contextlib
from types import SimpleNamespace
from typing import Any

import pytest

from delivery.config.settings import DeployConfig
from delivery.reporting import Recorded
from delivery.usecases import releasing


class FakeDeployer:
    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def predict(self, release: Any) -> list[str]:
        self.events.append(("predict", release))
        return ["prediction"]

    def deploy(self, release: Any) -> list[str]:
        self.events.append(("deploy", release))
        return ["report"]

    def rollback(self, to: str | None) -> list[str]:
        self.events.append(("rollback", to))
        return ["rolled back"]

    def status(self) -> list[str]:
        self.events.append(("status",))
        return ["status"]


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []

    @contextlib.contextmanager
    def login_scope(config: DeployConfig):
        seen.append("login scope")
        yield
        seen.append("login scope ends")

    def deployer(config: DeployConfig, hosts: list[Any], reporter: Any = None) -> FakeDeployer:
        seen.append(("deployer", config.lock_wait, [h.label for h in hosts], reporter))
        return FakeDeployer(seen)

    monkeypatch.setattr(releasing, "settings", lambda section: (DeployConfig(), SimpleNamespace()))
    monkeypatch.setattr(releasing, "require_cli", lambda: seen.append("cli"))
    monkeypatch.setattr(releasing, "registry_for", lambda config: "registry")
    monkeypatch.setattr(releasing, "resolve_release", lambda registry, config, version: f"release {version}")
    monkeypatch.setattr(releasing, "login_scope", login_scope)
    monkeypatch.setattr(releasing, "deployer", deployer)
    return seen


@pytest.mark.parametrize(("dry_run", "method"), [(False, "deploy"), (True, "predict")])
def test_deploy_resolves_the_release_then_runs_the_strategy_in_the_login_scope(events: list[Any], dry_run: bool, method: str) -> None:
    reporter = Recorded()
    result = releasing.deploy({}, ["ssh://deploy@prod-1"], "1.0.1", dry_run=dry_run, lock_wait="30", reporter=reporter)
    assert result == (["prediction"] if dry_run else ["report"])
    assert events == ["cli", ("deployer", 30.0, ["deploy@prod-1"], reporter), "login scope", (method, "release 1.0.1"), "login scope ends"]


def test_rollback_runs_in_the_login_scope(events: list[Any]) -> None:
    assert releasing.rollback({}, ["local"], "1.0.0-bbbbbbbbbbbb") == ["rolled back"]
    assert events[1:] == ["login scope", ("rollback", "1.0.0-bbbbbbbbbbbb"), "login scope ends"]


def test_status_needs_no_login(events: list[Any]) -> None:
    assert releasing.status({}, ["local"]) == ["status"]
    assert "login scope" not in events


def test_prune_keeps_the_count_asked_for_on_each_host(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def each_host(hosts: list[Any], action: Any, what: str, open_target: Any) -> list[Any]:
        return [action(SimpleNamespace(host=h)) for h in hosts]

    def prune(target: Any, keep: int, say: Any, dry_run: bool) -> str:
        say.step(f"{target.host.label}: keep {keep}")
        calls.append((target.host.label, keep, dry_run))
        return "report"

    monkeypatch.setattr(releasing, "each_host", each_host)
    monkeypatch.setattr(releasing.retention, "prune", prune)
    reporter = Recorded()
    assert releasing.prune({}, ["ssh://deploy@a", "ssh://deploy@b"], keep="2", dry_run=True, reporter=reporter) == ["report", "report"]
    assert calls == [("deploy@a", 2, True), ("deploy@b", 2, True)]
    assert reporter.lines == ["deploy@a: keep 2", "deploy@b: keep 2"]

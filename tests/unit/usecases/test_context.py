"""What every runbook shares (delivery/usecases/context.py): the hosts a run deploys to, the registry started on
demand when it is the default local one, and the docker CLI's login kept in a private config of the run."""

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from delivery.config.hosts import parse_host
from delivery.config.settings import load_config
from delivery.docker import engine
from delivery.errors import DeliveryError, RegistryUnreachable
from delivery.registry import auth
from delivery.registry.auth import Credentials
from delivery.reporting import Recorded
from delivery.usecases import context

OWN_LOGIN = Credentials("ci", "s3cret-pw", "deploy.registry_user and $CI_REGISTRY_TOKEN")


class FakeRegistry:
    def __init__(self, answers: bool) -> None:
        self.answers, self.pings = answers, 0

    def ping(self) -> None:
        self.pings += 1
        if not self.answers:
            raise RegistryUnreachable("nothing answers at localhost:5000")


def test_the_hosts_given_replace_the_configured_ones() -> None:
    config = load_config({"hosts": "local,ssh://deploy@web1"})
    assert context.hosts_from(config, []) == [parse_host("local"), parse_host("ssh://deploy@web1")]
    assert context.hosts_from(config, ["tcp://10.0.0.2:2376"]) == [parse_host("tcp://10.0.0.2:2376")]
    with pytest.raises(DeliveryError, match="^invalid host 'http://web1'"):
        context.hosts_from(config, ["http://web1"])


@pytest.mark.parametrize(("registry", "answers", "pings"), [("ghcr.io/acme", False, 0), ("localhost:5000", True, 1)],
                         ids=["remote-never-pinged", "local-already-running"])
def test_a_registry_that_needs_no_start_is_returned_as_it_is(monkeypatch: pytest.MonkeyPatch, registry: str, answers: bool,
                                                             pings: int) -> None:
    fake, said = FakeRegistry(answers), Recorded()
    monkeypatch.setattr(context, "registry_for", lambda config: fake)
    monkeypatch.setattr(context, "start_local_registry", lambda location: pytest.fail("started a registry"))
    assert context.ensure_registry(load_config({"registry": registry}), said) is fake
    assert fake.pings == pings and said.lines == []


def test_the_default_local_registry_is_started_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, said, started = FakeRegistry(answers=False), Recorded(), []
    monkeypatch.setattr(context, "registry_for", lambda config: fake)
    monkeypatch.setattr(context, "start_local_registry", lambda location: started.append(location) or f"registry:2 at {location}")
    assert context.ensure_registry(load_config({}), said) is fake
    assert started == ["localhost:5000"]
    assert said.lines == ["registry localhost:5000 is not running: starting a local one", "started registry:2 at localhost:5000"]


def test_without_a_login_of_its_own_a_run_keeps_the_users_docker_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "resolve", lambda *args, **kwargs: None)
    with context.login_scope(load_config({})):
        assert engine.private_config() is None
    context.login(load_config({}), SimpleNamespace())  # type: ignore[arg-type]  # anonymous: the docker CLI is not touched


def test_a_login_of_its_own_goes_to_a_private_config_removed_at_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "docker"
    user.mkdir()
    other = {"auth": "b3RoZXI6cHc="}
    (user / "config.json").write_text(json.dumps({"auths": {"reg:5000": {"auth": "b2xkOnB3"}, "other:5000": other}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(user))
    monkeypatch.setattr(auth, "resolve", lambda *args, **kwargs: OWN_LOGIN)
    config = load_config({"registry": "reg:5000/team", "registry_user": "ci", "registry_password_env": "CI_REGISTRY_TOKEN"})
    with context.login_scope(config):
        private = engine.private_config()
        assert private is not None and private != user
        document: dict[str, Any] = json.loads((private / "config.json").read_text())
        assert document["auths"] == {"other:5000": other} and document["credHelpers"]["reg:5000"] == ""
    assert engine.private_config() is None and not private.exists()
    assert json.loads((user / "config.json").read_text())["auths"]["reg:5000"] == {"auth": "b2xkOnB3"}


def test_a_login_outside_the_private_config_is_refused_and_names_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "resolve", lambda *args, **kwargs: OWN_LOGIN)
    config = load_config({"registry": "reg:5000", "registry_user": "ci", "registry_password_env": "CI_REGISTRY_TOKEN"})
    with pytest.raises(DeliveryError) as refused:
        context.login(config, SimpleNamespace(docker_cmd=["docker"]))  # type: ignore[arg-type]
    assert str(refused.value).startswith("refusing to log the docker CLI in to reg:5000 in the user's own config")
    assert "s3cret" not in str(refused.value)

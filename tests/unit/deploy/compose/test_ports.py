"""The real docker port over a Target, with a fake compose client: what it asks compose, and its one-line errors."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from delivery.deploy.compose.ports import ComposeDocker
from delivery.errors import DeliveryError


class FakeCompose:
    def __init__(self, calls: list[Any], started: list[Any], fail: bool = False) -> None:
        self.calls, self.started, self.fail = calls, started, fail
        self.compose = self

    def up(self, services: list[str], **options: Any) -> None:
        if self.fail:
            raise DockerException(["docker", "compose", "up"], 1, b"", b"Error response from daemon: no space left on device\n")
        self.calls.append(("up", services, options))

    def ps(self, services: list[str], all: bool) -> list[Any]:
        return self.started

    def rm(self, services: list[str], stop: bool) -> None:
        self.calls.append(("rm", services, stop))


def _port(started: list[Any], fail: bool = False) -> tuple[ComposeDocker, list[Any]]:
    calls: list[Any] = []

    def compose(**tags: str | None) -> FakeCompose:
        calls.append(("env", tags))
        return FakeCompose(calls, started, fail)

    inspect = SimpleNamespace(state=SimpleNamespace(status="exited"))
    docker = SimpleNamespace(container=SimpleNamespace(inspect=lambda cid: inspect))
    target = SimpleNamespace(compose=compose, docker=docker, host=SimpleNamespace(label="h1"))
    return ComposeDocker(target, proxy=SimpleNamespace()), calls  # type: ignore[arg-type]


def test_up_starts_one_service_without_pulling_or_its_dependencies() -> None:
    port, calls = _port([SimpleNamespace(id="c1")])
    assert port.up("web-green", {"green": "2.0.0"}).id == "c1"
    assert calls == [("env", {"green": "2.0.0"}),
                     ("up", ["web-green"], {"detach": True, "pull": "never", "quiet": True, "dependencies": False})]


def test_a_service_compose_did_not_start_is_one_line() -> None:
    with pytest.raises(DeliveryError, match="^compose started no web-green container on h1$"):
        _port([])[0].up("web-green", {})


def test_a_failed_up_is_one_line() -> None:
    with pytest.raises(DeliveryError, match="^starting web-green on h1 failed: Error response from daemon: no space left on device$"):
        _port([], fail=True)[0].up("web-green", {})


def test_remove_stops_and_removes_the_service() -> None:
    port, calls = _port([])
    port.remove("web-blue", {})
    assert calls[-1] == ("rm", ["web-blue"], True)


def test_is_running_reads_the_containers_state() -> None:
    assert _port([])[0].is_running("c1") is False

"""Waiting for the new container's health, and the verdicts on what it runs, with a fake engine and clock."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from delivery.deploy.compose.health import ContainerState, container_state, log_tail, platform_mismatch, wait_healthy
from delivery.reporting import Recorded


def _state(status: str = "running", health: str | None = "starting", exit_code: int = 0, restarting: bool = False) -> Any:
    return SimpleNamespace(status=status, health=SimpleNamespace(status=health) if health else None, exit_code=exit_code,
                           restarting=restarting)


class FakeEngine:
    """`docker.container.inspect` answers from a script (its last answer repeats); an exception is raised."""

    def __init__(self, states: list[Any]) -> None:
        self.states = list(states)
        self.container = self

    def inspect(self, container_id: str) -> Any:
        answer = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(state=answer, restart_count=2)

    def logs(self, container_id: str, tail: int) -> str:
        raise DockerException(["docker", "logs"], 1, b"", b"no such container")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _wait(states: list[Any], timeout: float = 5.0) -> tuple[tuple[bool, str], list[str]]:
    clock, said = Clock(), Recorded()
    result = wait_healthy(FakeEngine(states), "c1", timeout, said, sleep=clock.sleep, clock=clock)  # type: ignore[arg-type]
    return result, said.lines


def test_healthy_after_starting_says_each_state_once() -> None:
    result, lines = _wait([_state(), _state(), _state(health="healthy")])
    assert result == (True, "healthy") and lines == ["  waiting for health (starting)"]


@pytest.mark.parametrize(
    ("state", "why"),
    [
        pytest.param(_state("exited", "unhealthy", 3), "it exited with code 3", id="exited-before-unhealthy"),
        pytest.param(_state("restarting", None, 1, restarting=True), "it exited with code 1", id="restart-loop"),
        pytest.param(_state(health="unhealthy"), "its healthcheck failed", id="unhealthy"),
    ],
)
def test_it_fails_fast(state: Any, why: str) -> None:
    assert _wait([state])[0] == (False, why)


def test_an_engine_that_stops_answering_fails_the_wait() -> None:
    gone = DockerException(["docker", "inspect"], 1, b"", b"Cannot connect to the Docker daemon\n")
    assert _wait([_state(), gone])[0] == (False, "the engine stopped answering (Cannot connect to the Docker daemon)")


def test_it_gives_up_at_the_timeout() -> None:
    assert _wait([_state()], timeout=2.0)[0] == (False, "it was not healthy within 2s")


def test_platform_mismatch() -> None:
    assert platform_mismatch("linux/arm64", "linux/amd64") == "it runs the linux/arm64 image, not the host's linux/amd64"
    assert platform_mismatch("linux/amd64", "linux/amd64") is None
    assert platform_mismatch("unknown/unknown", "linux/amd64") is None and platform_mismatch("linux/arm64", None) is None


def test_container_state_and_a_log_tail_the_engine_cannot_give() -> None:
    engine = FakeEngine([_state("exited", None, 137)])
    assert container_state(engine, "c1") == ContainerState("exited", 2, 137)  # type: ignore[arg-type]
    assert log_tail(engine, "c1") == []  # type: ignore[arg-type]

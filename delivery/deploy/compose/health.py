"""Is the new container healthy, and does it run the release it was meant to?

`wait_healthy` polls the engine's healthcheck status; `image_mismatch` and `container_problem` are
the pure verdicts on what the engine says of a started container and its image.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.docker.engine import docker_errors, last_line
from delivery.reporting import Reporter


def wait_healthy(docker: DockerClient, container_id: str, timeout: float, reporter: Reporter,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> tuple[bool, str]:
    """Wait until the container's healthcheck passes; fail fast on unhealthy, exit or restart."""
    deadline = clock() + timeout
    last = ""
    while clock() < deadline:
        try:
            state = docker.container.inspect(container_id).state
        except DockerException as exc:
            # The engine went away (restarting?): containers it brings back come back unchecked
            # and the proxy forgets its state, so this deploy stops here and restores.
            return False, f"the engine stopped answering ({last_line(exc)})"
        health = state.health.status if state.health else None
        if health == "healthy":
            return True, "healthy"
        # Before the health status: the engine also marks a container that exited unhealthy.
        if state.status in ("exited", "dead") or (state.restarting and state.exit_code):
            return False, f"it exited with code {state.exit_code}"
        if health == "unhealthy":
            return False, "its healthcheck failed"
        if health != last:
            reporter.step(f"  waiting for health ({health or state.status})")
            last = health or ""
        sleep(0.25)
    return False, f"it was not healthy within {timeout:.0f}s"


def image_mismatch(accepted: frozenset[str], image_id: str, repo_digests: list[str]) -> str | None:
    """Pure: why a started container does not run the release (its image ID or a repo digest must be
    accepted: the registry's digests for a deploy, the recorded image ID for a rollback); None when it does."""
    if not accepted or accepted & {image_id, *repo_digests}:
        return None
    runs = f"image digest {', '.join(repo_digests)}" if repo_digests else f"image {image_id or 'unknown'}"
    return f"it runs {runs}, not {' or '.join(sorted(accepted))}"


def platform_mismatch(runs_on: str, platform: str | None) -> str | None:
    """Pure: why a started container runs the wrong platform's image (an engine that cannot tell: no verdict)."""
    if platform and runs_on != platform and "unknown" not in runs_on:
        return f"it runs the {runs_on} image, not the host's {platform}"
    return None


@dataclass(frozen=True)
class ContainerState:
    """What the engine says of a container: its status, how often its restart policy restarted it, its exit code."""

    status: str
    restarts: int
    exit_code: int | None = None


def container_state(docker: DockerClient, container_id: str) -> ContainerState:
    """The container's state now (one line on failure: the engine stopped answering)."""
    with docker_errors("inspecting the new container"):
        container = docker.container.inspect(container_id)
    return ContainerState(str(container.state.status), container.restart_count or 0, container.state.exit_code)


def container_problem(before: ContainerState, now: ContainerState) -> str | None:
    """Pure: why the new container no longer serves (it exited, or restarted since `before`), or None."""
    if now.status != "running":
        code = f" (exit code {now.exit_code})" if now.exit_code is not None else ""
        return f"the new container is {now.status}{code}"
    if now.restarts != before.restarts:
        return f"the new container restarted ({now.restarts - before.restarts} times)"
    return None


def log_tail(docker: DockerClient, container_id: str, lines: int = 15) -> list[str]:
    """The container's last log lines (none when the engine cannot give them)."""
    with contextlib.suppress(DockerException):
        return str(docker.container.logs(container_id, tail=lines)).splitlines()
    return []

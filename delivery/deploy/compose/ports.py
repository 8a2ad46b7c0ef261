"""The narrow seams a handover works through: `DockerPort` (the few engine and compose operations its
steps need) and `ProxyPort` (what it asks the proxy), with `ComposeDocker`, the real port over a Target.

Unit tests fake both (tests/unit/deploy/compose/test_steps.py); only the Docker test bed
runs the real ones. Every failure of the real port is a DeliveryError of one line.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from python_on_whales.exceptions import DockerException

from delivery.deploy.compose.health import ContainerState, container_state, log_tail, wait_healthy
from delivery.deploy.compose.proxy import Proxy, ServerStats
from delivery.deploy.compose.proxy_upkeep import Tags, ensure_proxy
from delivery.docker.engine import docker_errors
from delivery.errors import DeliveryError
from delivery.hosts.history import record
from delivery.hosts.services import LEGACY_SERVICE
from delivery.hosts.site import Site, running_image
from delivery.hosts.target import Target
from delivery.reporting import Reporter


class Started(Protocol):
    """A container a handover started: its ID and its image's ID (python_on_whales' Container is one)."""

    @property
    def id(self) -> str: ...

    @property
    def image(self) -> str: ...


class ProxyPort(Protocol):
    """What a handover asks the proxy (delivery/deploy/compose/proxy.py, Proxy, is the real one)."""

    container: str | None  # the proxy container its commands go to (None: no proxy runs)
    restarts: int  # how often the proxy container restarted since the handover began

    def set(self, command: str) -> None: ...

    def server(self, slot: str) -> ServerStats: ...

    def stats(self) -> dict[str, ServerStats]: ...

    def wait(self, timeout: float, ready: Callable[[], bool]) -> bool: ...

    def wait_passing(self, slot: str, timeout: float) -> bool: ...

    def drain(self, slot: str, timeout: float) -> tuple[float, int]: ...


class DockerPort(Protocol):
    """The engine and compose operations of a handover on one host."""

    @property
    def proxy(self) -> ProxyPort: ...

    def up(self, service: str, tags_: Tags) -> Started:
        """compose up one service (no dependencies, no pull); its container."""

    def remove(self, service: str, tags_: Tags) -> None:
        """Stop and remove one service's container."""

    def wait_healthy(self, container_id: str, timeout: float, reporter: Reporter) -> tuple[bool, str]:
        """Until the container's healthcheck passes (True, "healthy"), or why not."""

    def running_image(self, image_id: str) -> tuple[list[str], str]:
        """The repo digests and the platform of an image."""

    def container_state(self, container_id: str) -> ContainerState: ...

    def log_tail(self, container_id: str) -> list[str]: ...

    def is_running(self, container_id: str) -> bool: ...

    def start(self, container_id: str) -> None: ...

    def stop_legacy(self, container_id: str) -> None: ...

    def remove_legacy(self, container_id: str) -> None: ...

    def wait_for_engine(self) -> None:
        """After an engine restart, until it answers again."""

    def ensure_proxy(self, site: Site, tags_: Tags, reporter: Reporter) -> None:
        """Start the proxy, or keep it current (delivery/deploy/compose/proxy_upkeep.py); `proxy` attached to it."""

    def record(self, kind: str, tag: str, image: str) -> None:
        """Record a final web switch in the host's deploy history."""


class ComposeDocker:
    """The real DockerPort: compose and the engine of one Target, and its proxy."""

    def __init__(self, target: Target, proxy: Proxy | None = None) -> None:
        self.target = target
        self.real_proxy = proxy or Proxy(target.docker)

    @property
    def proxy(self) -> ProxyPort:
        return self.real_proxy

    def up(self, service: str, tags_: Tags) -> Started:
        compose = self.target.compose(**tags_)
        with docker_errors(f"starting {service} on {self.target.host.label}"):
            compose.compose.up([service], detach=True, pull="never", quiet=True, dependencies=False)
            containers = compose.compose.ps(services=[service], all=True)
        if not containers:
            raise DeliveryError(f"compose started no {service} container on {self.target.host.label}")
        return containers[0]

    def remove(self, service: str, tags_: Tags) -> None:
        with docker_errors(f"removing {service} on {self.target.host.label}"):
            self.target.compose(**tags_).compose.rm([service], stop=True)

    def wait_healthy(self, container_id: str, timeout: float, reporter: Reporter) -> tuple[bool, str]:
        return wait_healthy(self.target.docker, container_id, timeout, reporter)

    def running_image(self, image_id: str) -> tuple[list[str], str]:
        return running_image(self.target.docker, image_id)

    def container_state(self, container_id: str) -> ContainerState:
        return container_state(self.target.docker, container_id)

    def log_tail(self, container_id: str) -> list[str]:
        return log_tail(self.target.docker, container_id)

    def is_running(self, container_id: str) -> bool:
        with docker_errors("inspecting the old container"):
            return self.target.docker.container.inspect(container_id).state.status == "running"

    def start(self, container_id: str) -> None:
        with docker_errors("starting the old container"):
            self.target.docker.container.start(container_id)

    def stop_legacy(self, container_id: str) -> None:
        with docker_errors(f"stopping the old {LEGACY_SERVICE} container"):
            self.target.docker.container.stop(container_id)

    def remove_legacy(self, container_id: str) -> None:
        with docker_errors(f"removing the old {LEGACY_SERVICE} container"):
            self.target.docker.container.remove(container_id, force=True)

    def wait_for_engine(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.target.docker.system.info()
                return
            except DockerException:
                time.sleep(1)

    def ensure_proxy(self, site: Site, tags_: Tags, reporter: Reporter) -> None:
        ensure_proxy(self.target, site, tags_, reporter, self.real_proxy)

    def record(self, kind: str, tag: str, image: str) -> None:
        record(self.target.docker, self.target.config.compose_project, kind, tag, image)

"""What the swarm strategy's steps share: the narrow port to the swarm, a clock, the release they roll out.

`SwarmPort` is the few operations the steps need from a manager and the node engines; the real one
is delivery/docker/swarm.py's `Manager`, unit tests give a fake. `Clock` is wall time, monotonic time
and sleep, so a test can run a wait without waiting. `SwarmRelease` is what the steps read of a
release (delivery/deploy/compose/handover.py's `Release` is one).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from delivery.config.references import split_image_ref
from delivery.docker.swarm import Node, NodeImages, Service, Task, Unanswered
from delivery.registry.client import Manifest

WEB, CRON, PROXY = "web", "cron", "proxy"  # the stack's services, by short name


class SwarmPort(Protocol):
    """A swarm, through its manager, and the engines of the nodes deploy.nodes lists."""

    label: str  # the manager, as --host names it

    def nodes(self) -> dict[str, Node]: ...

    def services(self, stack: str) -> dict[str, Service]: ...

    def tasks(self, service_id: str) -> list[Task]: ...

    def stack_deploy(self, stack: str, path: Path) -> None: ...

    def update_image(self, service: str, image: str, what: str) -> None: ...

    def rollback_service(self, service: str) -> None: ...

    def attach(self, hosts: Iterable[str], nodes: Mapping[str, Node]) -> list[str]: ...

    def has_engine(self, node_id: str) -> bool: ...

    def images(self, node_id: str) -> NodeImages | Unanswered | None: ...

    def pull(self, node_id: str, reference: str) -> str | None: ...

    def pulled_at(self, node_id: str, since: float, names: Sequence[str]) -> float | None: ...

    def container_health(self, node_id: str | None, container_id: str) -> str | None: ...


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class ReleaseVariant(Protocol):
    """One platform's image of a release."""

    @property
    def manifest(self) -> Manifest: ...

    @property
    def diff_ids(self) -> tuple[str, ...]: ...


class SwarmRelease(Protocol):
    """A release as the swarm steps read it."""

    @property
    def tag(self) -> str: ...

    @property
    def image(self) -> str: ...

    @property
    def digest(self) -> str: ...

    def variant(self, platform: str, host: str) -> ReleaseVariant: ...


def tag_of(image: str | None) -> str | None:
    """Pure: the tag an image reference names (`r/app:1.0@sha256:...` -> 1.0), or None."""
    if not image:
        return None
    _, _, tag, _ = split_image_ref(image.split("@", 1)[0])
    return tag

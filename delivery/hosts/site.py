"""What runs on a host: the project's containers as compose labels them, which web slot is live, and
what each runs (its tag, the ref to start it again, its image's digests and platform).

`survey` reads the host; deciding which of two running slots is live (`live_slot`) is pure, from
what the proxy answers. The proxy is read through the `read_servers` function the caller passes
(delivery/deploy/compose knows the proxy), so this module knows no deploy.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, cast

from python_on_whales import Container, DockerClient

from delivery.config.platforms import engine_platform
from delivery.config.references import split_image_ref
from delivery.docker.engine import docker_errors
from delivery.errors import DeliveryError
from delivery.hosts.services import CRON_SERVICE, LEGACY_SERVICE, PROXY_SERVICE, SLOTS, service_of
from delivery.hosts.target import Target
from delivery.images import tags

_NEVER = datetime.min.replace(tzinfo=UTC)  # a container with no start time sorts first


class ServerWeight(Protocol):
    """What the proxy says of one web slot, as far as telling the live one goes (delivery/deploy/compose/proxy.py, ServerStats)."""

    @property
    def weight(self) -> int: ...

    @property
    def status(self) -> str: ...


# The proxy's servers of the backend, read in the proxy container given (None: none runs).
ReadServers = Callable[[str | None], Mapping[str, ServerWeight]]


@dataclass
class Site:
    """The project's containers on one host, as compose labels them."""

    web: dict[str, Container]  # slot -> running container
    cron: Container | None
    proxy: Container | None
    legacy: Container | None
    live: str | None = None  # the slot the proxy sends requests to

    def tag(self, slot: str | None) -> str | None:
        return running_tag(self.web.get(slot)) if slot else None

    def ref(self, slot: str | None) -> str | None:
        return running_ref(self.web.get(slot)) if slot else None

    @property
    def live_tag(self) -> str | None:
        if self.live:
            return self.tag(self.live)
        return running_tag(self.legacy) if self.legacy is not None else None

    @property
    def live_ref(self) -> str | None:
        return running_ref(self.live_container) if self.live or self.legacy is not None else None

    @property
    def live_container(self) -> Container | None:
        return self.web.get(self.live) if self.live else self.legacy


def _running(container: Container | None) -> bool:
    return container is not None and container.state.status in ("running", "restarting")


def survey(target: Target, read_servers: ReadServers) -> Site:
    """What runs on the host now, and which web slot is live (asking the proxy, through `read_servers`, when both run)."""
    compose = target.compose()
    with docker_errors(f"listing the project's containers on {target.host.label}"):
        containers = compose.compose.ps(all=True)
    by_service: dict[str, Container] = {}
    for container in containers:
        service = (container.config.labels or {}).get("com.docker.compose.service")
        if service and _running(container):
            by_service[service] = container
    site = Site(
        web={slot: by_service[service_of(slot)] for slot in SLOTS if service_of(slot) in by_service},
        cron=by_service.get(CRON_SERVICE),
        proxy=by_service.get(PROXY_SERVICE),
        legacy=by_service.get(LEGACY_SERVICE),
    )
    if len(site.web) == 1:
        site.live = next(iter(site.web))
    elif len(site.web) == 2:  # a deploy was interrupted: the proxy knows which one is live
        started = {slot: site.web[slot].state.started_at for slot in SLOTS}
        try:
            servers = read_servers(site.proxy.id if site.proxy is not None else None)
        except DeliveryError:
            servers = None
        site.live = live_slot(started, servers)
    return site


def live_slot(started: Mapping[str, datetime | None], servers: Mapping[str, ServerWeight] | None) -> str:
    """Pure: which of two running slots is live. Switched: the new one has the live weight, the old one the
    fallback weight. Not yet switched: the new one is held (DRAIN). A restarted proxy forgot both, and a
    proxy that does not answer (`servers` None) tells nothing: the older one was live."""
    oldest_first = sorted(SLOTS, key=lambda slot: started[slot] or _NEVER)
    if servers is None or any(slot not in servers for slot in SLOTS):
        return oldest_first[0]
    return max(oldest_first, key=lambda slot: (servers[slot].weight, servers[slot].status == "UP"))


def _image_of(container: Container) -> str:
    # The engine always names a container's image; split_image_ref makes one line of an odd one.
    return cast(str, container.config.image)


def running_tag(container: Container | None) -> str | None:
    """The app tag the container was started from (from its image reference, `...:tag[@sha256:...]`)."""
    if container is None:
        return None
    _, _, tag, _ = split_image_ref(_image_of(container))
    return tag


def running_ref(container: Container | None) -> str | None:
    """What the env file names to start the container's image again: its tag, pinned to the digest it was
    started by (`tag@sha256:...`; a container an older toolkit started by tag alone: the tag)."""
    if container is None:
        return None
    _, _, tag, digest = split_image_ref(_image_of(container))
    return tags.pinned(tag, digest) if tag else None


def image_digests(docker: DockerClient, image_id: str) -> list[str]:
    """The repo digests of a container's image (`sha256:...`)."""
    return running_image(docker, image_id)[0]


def running_image(docker: DockerClient, image_id: str) -> tuple[list[str], str]:
    """The repo digests of a container's image, and its platform (what its config says)."""
    with docker_errors("inspecting the running image"):
        image = docker.image.inspect(image_id)
    return [ref.rsplit("@", 1)[-1] for ref in (image.repo_digests or [])], engine_platform(image.os, image.architecture)

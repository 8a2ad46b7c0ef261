"""The compose Deployer: each host in turn through its own compose project (delivery/deploy/compose/handover.py).

A thin wrapper: the per-host entry points do the work, fleet.each_host goes host by host
and stops at the first failure.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.config.hosts import Host
from delivery.config.settings import DeployConfig
from delivery.deploy.compose import handover
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.fleet import Opener, each_host
from delivery.deploy.reports import Freshness, HostStatus, HostStatusEntry, PullPrediction
from delivery.errors import DeliveryError
from delivery.hosts import retention
from delivery.hosts.target import Target
from delivery.registry.client import Registry
from delivery.release.release import Release, predict_pull
from delivery.reporting import Reporter
from delivery.supply import refresh


@dataclass
class ComposeDeployer:
    """deploy.mode compose: host by host."""

    config: DeployConfig
    hosts: list[Host]
    registry: Callable[[], Registry]
    login: Callable[[DockerClient], None]
    reporter: Reporter
    open_target: Opener

    def predict(self, release: Release) -> list[PullPrediction]:
        def one(target: Target) -> PullPrediction:
            variant = release.variant(target.info.platform, target.host.label)
            return PullPrediction(target.host.label, variant.platform, predict_pull(target, variant, release.image))

        return each_host(self.hosts, one, "deploy", self.open_target)

    def deploy(self, release: Release) -> list[DeployReport]:
        def one(target: Target) -> DeployReport:
            release.variant(target.info.platform, target.host.label)  # a release without the host's platform: nothing changes
            self.login(target.docker)  # the host pulls with the credentials of this machine's docker CLI
            return handover.deploy(target, release, self.reporter)

        return each_host(self.hosts, one, "deploy", self.open_target)

    def rollback(self, to: str | None) -> list[DeployReport]:
        def one(target: Target) -> DeployReport:
            self.login(target.docker)  # a release whose image the host lost is pulled again
            return handover.rollback(target, self.reporter, to)

        return each_host(self.hosts, one, "rollback", self.open_target)

    def status(self) -> list[HostStatus]:
        registry = self.registry()

        def one(target: Target) -> HostStatus:
            entry = cast(HostStatusEntry, {**handover.status(target), "releases": retention.usage(target)})
            return HostStatus(with_freshness(target, entry, registry))

        return each_host(self.hosts, one, "status", self.open_target)


def with_freshness(target: Target, entry: HostStatusEntry, registry: Registry) -> HostStatusEntry:
    """The status entry plus the running image's base digest, deps age and newer deps image (delivery/supply/refresh.py)."""
    running = entry.get("running")
    if running:
        try:
            image = target.docker.image.inspect(running["image"])
            entry["deps"] = cast(Freshness, refresh.deps_freshness(image.config.labels or {}, image.config.env or [], registry))
        except (DeliveryError, DockerException) as exc:  # status still answers with the registry down
            entry["deps"] = {"error": str(exc).splitlines()[0]}
    return entry

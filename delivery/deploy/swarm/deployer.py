"""The swarm Deployer: one stack through one manager (delivery/deploy/swarm/rollout.py).

A thin wrapper: rollout's entry points do the work; swarm_run checks there is one manager
and turns a failed report into DeployFailed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from python_on_whales import DockerClient

from delivery.config.hosts import Host
from delivery.config.settings import DeployConfig
from delivery.deploy.reports import SwarmStatus, SwarmStatusEntry
from delivery.deploy.swarm import rollout
from delivery.deploy.swarm.measure import SwarmReport
from delivery.docker.engine import require_cli
from delivery.errors import DeliveryError, DeployFailed
from delivery.registry.client import Registry
from delivery.release.release import Release, resolve_release
from delivery.reporting import Reporter

T = TypeVar("T")


@dataclass
class SwarmDeployer:
    """deploy.mode swarm: the stack, through the one manager given as the host."""

    config: DeployConfig
    hosts: list[Host]
    root: Path
    registry: Callable[[], Registry]
    login: Callable[[DockerClient], None]
    reporter: Reporter

    def predict(self, release: Release) -> list[SwarmReport]:
        return [self._deploy(release, dry_run=True)]

    def deploy(self, release: Release) -> list[SwarmReport]:
        return [self._deploy(release, dry_run=False)]

    def _deploy(self, release: Release, dry_run: bool) -> SwarmReport:
        return swarm_run(self.hosts, lambda manager: rollout.deploy(
            manager, self.config, self.root, release, self.reporter, dry_run=dry_run, login=self.login))

    def rollback(self, to: str | None) -> list[SwarmReport]:
        if to is not None:  # Swarm's own rollback goes back one step only: a chosen release is deployed again
            require_cli()
            return self.deploy(resolve_release(self.registry(), self.config, to))
        return [swarm_run(self.hosts, lambda manager: rollout.rollback(manager, self.config, self.reporter))]

    def status(self) -> list[SwarmStatus]:
        return [SwarmStatus(cast(SwarmStatusEntry, swarm_run(self.hosts, lambda manager: rollout.status(manager, self.config))))]


def swarm_run(hosts: list[Host], action: Callable[[Host], T]) -> T:
    """Run `action` through the one manager; a report that failed becomes DeployFailed."""
    if len(hosts) != 1:
        raise DeliveryError(f"deploy.mode is swarm: give one manager with --host (or deploy.hosts), not {len(hosts)} hosts")
    require_cli()
    result = action(hosts[0])
    if isinstance(result, SwarmReport) and result.error:
        raise DeployFailed(result.error, [result.as_dict()])
    return result

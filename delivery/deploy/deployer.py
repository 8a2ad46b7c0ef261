"""The Deployer protocol: deploy, rollback, status and the dry run, whatever the strategy; and its factory.

Two strategies implement it: compose, host by host (delivery/deploy/compose/deployer.py), and swarm,
a stack through one manager (delivery/deploy/swarm/deployer.py). `deployer_for` is the only place
that reads deploy.mode: the runbooks and the formatters never compare it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from python_on_whales import DockerClient

from delivery.config.hosts import Host
from delivery.config.settings import DeployConfig
from delivery.deploy.compose.deployer import ComposeDeployer
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.fleet import opener
from delivery.deploy.reports import HostStatus, PullPrediction, SwarmStatus
from delivery.deploy.swarm.deployer import SwarmDeployer
from delivery.deploy.swarm.measure import SwarmReport
from delivery.registry.client import Registry
from delivery.release.release import Release
from delivery.reporting import Reporter

Outcome = DeployReport | SwarmReport
Prediction = PullPrediction | SwarmReport
Status = HostStatus | SwarmStatus


class Deployer(Protocol):
    """A deploy strategy over the hosts of one run. Each method returns one report per host (swarm: one in all)
    and raises DeployFailed (delivery/deploy/fleet.py), with the reports so far, for a failure after a change."""

    def deploy(self, release: Release) -> Sequence[Outcome]: ...

    def predict(self, release: Release) -> Sequence[Prediction]:
        """The dry run: what each host (swarm: each node) would download; changes nothing."""
        ...

    def rollback(self, to: str | None) -> Sequence[Outcome]:
        """Back to the release before the current one, or to the release tagged `to`."""
        ...

    def status(self) -> Sequence[Status]: ...


def deployer_for(config: DeployConfig, hosts: list[Host], root: Path, registry: Callable[[], Registry],
                 login: Callable[[DockerClient], None], reporter: Reporter) -> Deployer:
    """The strategy deploy.mode names, over `hosts`; `registry` gives the registry client when one is needed,
    `login` logs a host's (or node's) docker CLI in before it pulls."""
    if config.mode == "swarm":
        return SwarmDeployer(config, hosts, root, registry, login, reporter)
    return ComposeDeployer(config, hosts, registry, login, reporter, opener(config, root / "docker-compose.yml"))

"""deployer_for: the one place that reads deploy.mode."""

from pathlib import Path

from delivery.config.hosts import parse_host
from delivery.config.settings import DeployConfig
from delivery.deploy.compose.deployer import ComposeDeployer
from delivery.deploy.deployer import deployer_for
from delivery.deploy.swarm.deployer import SwarmDeployer
from delivery.reporting import Silent

HOSTS = [parse_host("ssh://deploy@prod-1")]


def make(mode: str) -> object:
    def registry():
        raise AssertionError("the factory does not reach the registry")

    def login(docker):
        raise AssertionError("the factory logs nothing in")

    return deployer_for(DeployConfig(mode=mode), HOSTS, Path("/repo"), registry, login, Silent())


def test_compose_is_the_default_strategy() -> None:
    deployer = make("compose")
    assert isinstance(deployer, ComposeDeployer)
    assert deployer.hosts == HOSTS


def test_swarm_mode_gives_the_swarm_strategy_over_the_repository() -> None:
    deployer = make("swarm")
    assert isinstance(deployer, SwarmDeployer)
    assert (deployer.hosts, deployer.root) == (HOSTS, Path("/repo"))

"""What every runbook shares: the settings read once, the registry and its login, the hosts and their engines, progress and results.

Each runbook raises DeliveryError for anything a user can fix; the tasks (tasks/) turn
that into one line and a non-zero exit. Progress goes to a Reporter (delivery/ui/progress.py:
stderr), results are returned as typed reports that the tasks print (delivery/ui/).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.config.hosts import Host, parse_host
from delivery.config.project import Project, load_project
from delivery.config.settings import DeployConfig, load_config
from delivery.deploy import fleet
from delivery.deploy.deployer import Deployer, deployer_for
from delivery.docker.engine import private_config, private_docker_config
from delivery.errors import DeliveryError, RegistryUnreachable
from delivery.hosts.target import Target
from delivery.images import build
from delivery.images.source import read_source_state
from delivery.registry import auth
from delivery.registry.client import Registry, is_loopback, start_local_registry
from delivery.reporting import Reporter
from delivery.ui.progress import STDERR

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def settings(section: Mapping[str, Any]) -> tuple[DeployConfig, Project]:
    return load_config(section), load_project(ROOT)


def registry_for(config: DeployConfig) -> Registry:
    """The configured registry, with the credentials the docker CLI has for it, else the configured ones."""
    return Registry(config.registry, auth.resolve(config.registry, config.registry_user, config.registry_password_env))


def ensure_registry(config: DeployConfig, reporter: Reporter = STDERR) -> Registry:
    """The configured registry, started on demand when it is the default local one."""
    registry = registry_for(config)
    if not is_loopback(config.registry):
        return registry  # a remote registry's failures are reported by the first real request
    try:
        registry.ping()
    except RegistryUnreachable:
        reporter.step(f"registry {config.registry} is not running: starting a local one")
        reporter.step(f"started {start_local_registry(config.registry)}")
    return registry


@contextlib.contextmanager
def login_scope(config: DeployConfig) -> Iterator[None]:
    """The docker CLI config of a task run: when the run logs in itself (deploy.registry_user), a private one.

    `docker login` would keep the password in the user's ~/.docker/config.json for ever; so the run's
    clients use a copy of that config made for it (delivery/docker/engine.py, private_docker_config), in which
    `login` stores only this registry's login, and which is removed when the run ends: after an error
    or a signal too. With credentials the docker CLI has already, or none, nothing changes.
    """
    credentials = auth.resolve(config.registry, config.registry_user, config.registry_password_env)
    if not auth.logs_in(credentials):
        yield
        return
    user_dir = auth.docker_config_path(os.environ).parent
    document = auth.private_config_document(auth.read_docker_config(user_dir / "config.json"), auth.registry_host(config.registry))
    with private_docker_config(user_dir, document):
        yield


def login(config: DeployConfig, docker: DockerClient) -> None:
    """Log the docker CLI in with the configured credentials, unless it has its own for the registry.

    The engines pull (and BuildKit reads the deps image) with the CLI's credentials. The
    password goes by stdin, never argv or output, and only into the run's private config (login_scope).
    """
    credentials = auth.resolve(config.registry, config.registry_user, config.registry_password_env)
    if not auth.logs_in(credentials):
        return  # anonymous, or the docker CLI already has credentials for it
    assert credentials is not None
    host = auth.registry_host(config.registry)
    private = private_config()
    if private is None or str(private) not in [str(part) for part in docker.docker_cmd]:
        raise DeliveryError(f"refusing to log the docker CLI in to {host} in the user's own config, where the password "
                            "would stay: this task must run within login_scope (a bug in the toolkit)")
    try:  # python-on-whales' docker.login lets "Login Succeeded" reach stdout, which --json needs clean
        run(docker.docker_cmd + ["login", host, "--username", credentials.username, "--password-stdin"],
            input=credentials.secret.encode())
    except DockerException as exc:
        raise DeliveryError(
            f"docker login to {host} as {credentials.username} failed: check ${config.registry_password_env}"
        ) from exc


# -- deploy ----------------------------------------------------------------------------------------
def hosts_from(config: DeployConfig, hosts: Iterable[str]) -> list[Host]:
    return [parse_host(h) for h in (list(hosts) or list(config.hosts))]


def current_version(project: Project) -> str:
    return build.app_tag_for(project, read_source_state(ROOT))


def opened(host: Host, config: DeployConfig) -> contextlib.AbstractContextManager[Target]:
    """One host of this checkout's compose project, closed at the end (delivery/deploy/fleet.py)."""
    return fleet.opened(host, config, COMPOSE_FILE)


def deployer(config: DeployConfig, hosts: list[Host], reporter: Reporter = STDERR) -> Deployer:
    """The deploy strategy of deploy.mode over `hosts`, logging each engine in with this run's credentials."""
    return deployer_for(config, hosts, ROOT, lambda: registry_for(config), lambda docker: login(config, docker), reporter)

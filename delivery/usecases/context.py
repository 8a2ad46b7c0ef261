"""What every runbook shares: the settings read once, the registry and its login, the hosts and their engines, progress and results.

Each runbook raises DeliveryError for anything a user can fix; tasks.py turns
that into one line and a non-zero exit. Progress goes to stderr, results to
stdout (as JSON with --json), so scripts can read them.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.config.hosts import Host, parse_host
from delivery.config.project import Project, load_project
from delivery.config.settings import DeployConfig, load_config
from delivery.deploy.compose.handover import DeployReport, Target
from delivery.docker.engine import private_config, private_docker_config
from delivery.errors import DeliveryError
from delivery.images import build
from delivery.images.source import read_source_state
from delivery.registry import auth
from delivery.registry.client import Registry, RegistryUnreachable, is_loopback, start_local_registry

ROOT = Path(__file__).resolve().parents[2]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(result: Any, as_json: bool, human: str) -> None:
    print(json.dumps(result, indent=2, sort_keys=True) if as_json else human, flush=True)


def settings(section: Mapping[str, Any]) -> tuple[DeployConfig, Project]:
    return load_config(section), load_project(ROOT)


def registry_for(config: DeployConfig) -> Registry:
    """The configured registry, with the credentials the docker CLI has for it, else the configured ones."""
    return Registry(config.registry, auth.resolve(config.registry, config.registry_user, config.registry_password_env))


def ensure_registry(config: DeployConfig) -> Registry:
    """The configured registry, started on demand when it is the default local one."""
    registry = registry_for(config)
    if not is_loopback(config.registry):
        return registry  # a remote registry's failures are reported by the first real request
    try:
        registry.ping()
    except RegistryUnreachable:
        say(f"registry {config.registry} is not running: starting a local one")
        say(f"started {start_local_registry(config.registry)}")
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


def login(config: DeployConfig, docker) -> None:
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


@contextlib.contextmanager
def opened(host: Host, config: DeployConfig) -> Iterator[Target]:
    target = Target(host, config, ROOT / "docker-compose.yml")
    try:
        yield target
    finally:
        target.close()


def each_host(config: DeployConfig, hosts: list[Host], action: Callable[[Target], Any], what: str) -> list[dict[str, Any]]:
    """Run `action` on each host in turn; stop at the first failure, keeping the reports of the hosts before it."""
    results: list[dict[str, Any]] = []
    for host in hosts:
        try:
            with opened(host, config) as target:
                result = action(target)
        except DeliveryError as exc:
            if not results:
                raise
            results.append({"host": host.label, "error": str(exc)})
            raise DeployFailed(f"{what} on {host.label} failed: {exc} (hosts before it: {_outcomes(results[:-1])})", results) from exc
        if isinstance(result, DeployReport):
            results.append(result.as_dict())
            if not result.healthy:
                message = result.error or f"{what} failed"
                if len(results) > 1:
                    message += f" (hosts before it: {_outcomes(results[:-1])})"
                raise DeployFailed(message, results)
        else:
            results.append(result)
    return results


def _outcomes(results: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['host']} {'runs ' + r['version'] if r.get('version') else 'done'}" for r in results)


class DeployFailed(DeliveryError):
    """A deploy that failed after doing something: carries the reports so far (for --json)."""

    def __init__(self, message: str, reports: list[dict[str, Any]]):
        super().__init__(message)
        self.reports = reports

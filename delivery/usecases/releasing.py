"""The release runbooks: deploy, rollback, status, unlock and prune on each host or swarm.

deploy, rollback and status go through the Deployer of deploy.mode (delivery/deploy/deployer.py);
they return typed reports, which the tasks print with delivery/ui/text.py or as JSON.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from delivery.config.settings import load_config
from delivery.config.validation import keep_count, wait_seconds
from delivery.deploy.deployer import Outcome, Prediction, Status
from delivery.deploy.fleet import each_host, opener
from delivery.docker.engine import check_engine, connect, require_cli
from delivery.errors import DeliveryError
from delivery.hosts import retention
from delivery.hosts.lock import unlock as unlock_lock
from delivery.hosts.retention import PruneReport
from delivery.release.release import resolve_release
from delivery.reporting import Reporter
from delivery.ui.progress import STDERR
from delivery.usecases.context import COMPOSE_FILE, current_version, deployer, hosts_from, login_scope, registry_for, settings


def deploy(section: Mapping[str, Any], hosts: Iterable[str] = (), version: str | None = None, dry_run: bool = False,
           lock_wait: str | float | None = None, reporter: Reporter = STDERR) -> Sequence[Outcome | Prediction]:
    """Deploy to each host in turn; stop at the first failure (its report says whether it rolled back)."""
    config, project = settings(section)
    if lock_wait is not None:  # --lock-wait over deploy.lock_wait
        config = dataclasses.replace(config, lock_wait=wait_seconds("--lock-wait", lock_wait))
    targets = hosts_from(config, hosts)  # validate every host before touching any
    require_cli()
    release = resolve_release(registry_for(config), config, version or current_version(project))
    strategy = deployer(config, targets, reporter)
    with login_scope(config):
        return strategy.predict(release) if dry_run else strategy.deploy(release)


def rollback(section: Mapping[str, Any], hosts: Iterable[str] = (), to: str | None = None,
             reporter: Reporter = STDERR) -> Sequence[Outcome]:
    """Go back to the release before the current one (or to `to`) on each host in turn, or on the swarm."""
    config = load_config(section)
    strategy = deployer(config, hosts_from(config, hosts), reporter)
    with login_scope(config):
        return strategy.rollback(to)


def status(section: Mapping[str, Any], hosts: Iterable[str] = ()) -> Sequence[Status]:
    """What runs on each host (or the swarm) and its deploy history."""
    config = load_config(section)
    return deployer(config, hosts_from(config, hosts)).status()


def unlock(section: Mapping[str, Any], hosts: Iterable[str] = (), force: bool = False) -> list[str]:
    """Remove each host's stale deploy lock; a live holder's, or one that cannot be checked from here, only with `force`."""
    config = load_config(section)
    done: list[str] = []
    for host in hosts_from(config, hosts):
        docker = connect(host)
        check_engine(docker, host)
        try:
            done.append(unlock_lock(docker, config.compose_project, host.label, host.url or host.context or "local", force))
        except DeliveryError as exc:
            raise DeliveryError(f"{exc}" + (f" (done before it: {'; '.join(done)})" if done else "")) from exc
    return done


# -- day-2 operations ----------------------------------------------------------------------------
def prune(section: Mapping[str, Any], hosts: Iterable[str] = (), keep: str | int | None = None,
          dry_run: bool = False, reporter: Reporter = STDERR) -> list[PruneReport]:
    """Keep the newest releases on each host (--keep, else deploy.keep_releases); prune the others."""
    config = load_config(section)
    count = config.keep_releases if keep is None else keep_count("--keep", keep)
    targets = hosts_from(config, hosts)
    return each_host(targets, lambda target: retention.prune(target, count, reporter, dry_run), "prune",
                     opener(config, COMPOSE_FILE))

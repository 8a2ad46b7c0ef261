"""Deploying to a Docker Swarm through a manager: the stack, a rolling update Swarm runs, measured per node.

Swarm does the rolling (docker-stack.yml: start-first, one task at a time, failure_action
rollback, a monitor window). What this strategy adds around it, one module a step:
- before (plan.py): what each node will download, predicted from the node's own engine (deploy.nodes),
  printed by --dry-run; optionally a pre-pull on every node (prepull.py, deploy.pre_pull);
- the update (update.py): `docker stack deploy`, then web, cron and the proxy watched to their end;
- after (measure.py, outcome.py): per node, the layers and bytes that arrived (its layers before and after,
  measured), the pull's seconds, the update's state (completed / rolled back / paused), its seconds,
  and the tasks that failed;
- `status`: services, tasks running and healthy per node, the digest each runs, update state.

This module holds the runbook entries (deploy, rollback, status): each opens the manager
(delivery/docker/swarm.py), takes its deploy lock, and runs the steps over the port (port.py)
that unit tests fake. Nodes are matched to their engines by swarm node id (`docker info` on each engine).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient

from delivery.config.hosts import Host
from delivery.config.settings import DeployConfig
from delivery.deploy.swarm.measure import SwarmReport
from delivery.deploy.swarm.outcome import conclude
from delivery.deploy.swarm.plan import old_cron, predict, survey, wanted_stack
from delivery.deploy.swarm.port import CRON, SYSTEM_CLOCK, WEB, Clock, SwarmPort, SwarmRelease, tag_of
from delivery.deploy.swarm.prepull import pre_pull
from delivery.deploy.swarm.update import DONE_STATES, move_cron, node_watch, start_update, update_web, wait_proxy, wait_update
from delivery.docker.swarm import Node, Service, Task, open_manager
from delivery.errors import DeliveryError
from delivery.hosts.lock import deploy_lock
from delivery.reporting import Reporter

# The stack document and its config files for a cron tag (web's is the release's).
Render = Callable[[str | None], tuple[dict[str, Any], dict[str, str]]]


def manager_lock(manager: DockerClient, host: Host, config: DeployConfig, reporter: Reporter) -> contextlib.AbstractContextManager[None]:
    """The deploy lock (delivery/hosts/lock.py) on the manager's engine: the one compose hosts take, for the stack.

    It lives on that manager: every deploy and rollback of the stack must go through the same one (deploy.hosts).
    """
    return deploy_lock(manager, config.compose_project, host.label, host.url or host.context or "local", config.lock_wait, reporter)


# -- deploy -------------------------------------------------------------------------------------
def deploy(host: Host, config: DeployConfig, root: Path, release: SwarmRelease, reporter: Reporter, dry_run: bool = False,
           login: Callable[[DockerClient], None] = lambda docker: None) -> SwarmReport:
    """Deploy `release` as the stack through the manager at `host`, under the manager's deploy lock (a dry run
    takes none); Swarm rolls it out, this measures it."""
    started = time.monotonic()
    manager = open_manager(host)

    def render(cron_tag: str | None) -> tuple[dict[str, Any], dict[str, str]]:
        return wanted_stack(manager.docker, config, root, release.tag, cron_tag, release.digest)

    with contextlib.nullcontext() if dry_run else manager_lock(manager.docker, host, config, reporter):
        return run_deploy(manager, config, release, reporter, render, dry_run, lambda: login(manager.docker), started)


def run_deploy(port: SwarmPort, config: DeployConfig, release: SwarmRelease, reporter: Reporter, render: Render, dry_run: bool,
               login: Callable[[], None], started: float, clock: Clock = SYSTEM_CLOCK) -> SwarmReport:
    """The deploy's steps over the port: survey and predict (all a dry run does), pre-pull, update, conclude."""
    found = survey(port, config, release, reporter)
    cron_before = old_cron(found)
    document, files = render(cron_before)
    report = predict(found, document, port.label, config.compose_project, release, dry_run, reporter)
    if dry_run:
        report.update_state = "dry run"
        return report
    login()
    if config.pre_pull:
        pulled_at = clock.monotonic()
        seconds = pre_pull(port, release, found.nodes, config.registry, reporter, clock)
        report.pre_pull, report.pre_pull_seconds = True, round(clock.monotonic() - pulled_at, 2)
        for entry, node in zip(report.nodes, found.nodes.values(), strict=False):
            entry.pull_seconds = seconds.get(node.id)
    since = start_update(port, report, document, files, reporter, clock)
    watch = node_watch(port, report, reporter)
    update_web(port, config, report, since, watch, reporter, clock)
    cron_message = move_cron(port, config, release, report, cron_before, since, watch, reporter, clock)
    wait_proxy(port, report, len(found.nodes), since, watch, reporter, clock)
    watch()
    return conclude(port, config, release, found, report, since, cron_message, started, clock)


# -- rollback and status --------------------------------------------------------------------------
def rollback(host: Host, config: DeployConfig, reporter: Reporter) -> SwarmReport:
    """`docker service rollback` of web (then cron): back to the spec before the last update (one step, Swarm's),
    under the manager's deploy lock."""
    started = time.monotonic()
    manager = open_manager(host)
    with manager_lock(manager.docker, host, config, reporter):
        return run_rollback(manager, config, reporter, started)


def run_rollback(port: SwarmPort, config: DeployConfig, reporter: Reporter, started: float, clock: Clock = SYSTEM_CLOCK) -> SwarmReport:
    """The rollback's steps over the port: Swarm's previous spec of web (and cron), waited for."""
    stack = config.compose_project
    current = port.services(stack)
    web = current.get(WEB)
    if web is None:
        raise DeliveryError(f"no stack {stack} on the swarm of {port.label}: deploy first (`invoke deploy`)")
    if not web.previous:
        raise DeliveryError(f"{stack}_{WEB} has no previous release to go back to (it was deployed once)")
    image = web.previous_image or ""
    report = SwarmReport(manager=port.label, stack=stack, image=image.split("@")[0], version=tag_of(image) or "",
                         digest=image.partition("@")[2], previous=tag_of(web.image))
    reporter.step(f"{port.label}: rolling {stack}_{WEB} back from {report.previous} to {report.version} (Swarm's previous spec)")
    began = clock.time()
    for name in (WEB, CRON):
        if name in current and current[name].previous:
            port.rollback_service(f"{stack}_{name}")
    report.update_state, report.update_message = wait_update(port, stack, WEB, began, config.replicas * (config.health_timeout + 30),
                                                             reporter, clock=clock)
    report.cron_state, _ = wait_update(port, stack, CRON, began, config.health_timeout + 60, reporter, clock=clock)
    report.update_seconds = round(clock.time() - began, 2)
    report.healthy = report.update_state in ("rolled back", "completed")
    if not report.healthy:
        report.error = f"the rollback of {stack}_{WEB} {report.update_state} ({report.update_message}): see `invoke status`"
    report.seconds = round(clock.monotonic() - started, 2)
    return report


def status(host: Host, config: DeployConfig) -> dict[str, Any]:
    """The stack's services: update state, tasks running and healthy per node, the digest each task runs."""
    return stack_status(open_manager(host), config)


def stack_status(port: SwarmPort, config: DeployConfig) -> dict[str, Any]:
    """`status` over the port: the nodes, then each service of the stack."""
    nodes = port.nodes()
    port.attach(config.nodes, nodes)
    found = port.services(config.compose_project)
    return {"mode": "swarm", "host": port.label, "stack": config.compose_project,
            "nodes": {n.name: {"state": n.state, "availability": n.availability, "address": n.address} for n in nodes.values()},
            "services": {name: service_status(port, svc, nodes) for name, svc in sorted(found.items())}}


def service_status(port: SwarmPort, svc: Service, nodes: dict[str, Node]) -> dict[str, Any]:
    """One service's status entry: its image, replicas, update, and its running tasks per node."""
    entry: dict[str, Any] = {
        "image": svc.image.split("@")[0], "tag": tag_of(svc.image),
        "replicas": svc.replicas if svc.replicas is not None else "global",
        "update_state": DONE_STATES.get(svc.update_state, svc.update_state or "none"),
        "update_message": svc.update_message, "per_node": {}, "tasks": [],
    }
    for task in port.tasks(svc.id):
        if task.desired_state != "running":
            continue
        node = nodes.get(task.node_id or "")
        node_name = node.name if node else (task.node_id if task.node_id is not None else "?")
        health = task_health(port, task)
        entry["tasks"].append({"node": node_name, "state": task.state, "health": health,
                               "tag": tag_of(task.image), "digest": task.image.partition("@")[2] or None})
        counts = entry["per_node"].setdefault(node_name, {"running": 0, "healthy": 0})
        counts["running"] += task.state == "running"
        counts["healthy"] += health == "healthy"
    return entry


def task_health(port: SwarmPort, task: Task) -> str | None:
    """The task container's health from its node's engine; without one, Swarm's view (running = passed)."""
    if task.container_id:
        health = port.container_health(task.node_id, task.container_id)
        if health is not None:
            return health
    # Swarm holds a task in `starting` until its healthcheck passes: running means it passed.
    return "healthy" if task.state == "running" else task.state

"""After the swarm's update: the tasks that failed, the measurements, whether it is healthy, and the one-line error."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from delivery.config.settings import DeployConfig
from delivery.deploy.swarm.measure import SwarmReport, measure
from delivery.deploy.swarm.plan import Survey
from delivery.deploy.swarm.port import CRON, PROXY, WEB, Clock, SwarmPort, SwarmRelease, tag_of
from delivery.deploy.swarm.prepull import pull_hint
from delivery.deploy.swarm.update import SETTLED
from delivery.docker.swarm import Node, Service


def failed_tasks(port: SwarmPort, svc: Service | None, since: float, nodes: Mapping[str, Node]) -> list[dict[str, Any]]:
    """The service's tasks of this deploy that failed or were rejected (or carry an error and do not run)."""
    if svc is None:
        return []
    found = []
    for task in port.tasks(svc.id):
        if task.created_at < since - 1:
            continue
        if task.state in ("failed", "rejected") or (task.error and task.state != "running"):
            node = nodes.get(task.node_id or "")
            found.append({"service": svc.name, "node": node.name if node else task.node_id,
                          "state": task.state, "error": task.error or task.message, "image": tag_of(task.image)})
    return found


def conclude(port: SwarmPort, config: DeployConfig, release: SwarmRelease, found: Survey, report: SwarmReport, since: float,
             cron_message: str | None, started: float, clock: Clock) -> SwarmReport:
    """The failed tasks, the per-node measurements, healthy or the one-line error, the deploy's seconds."""
    final = port.services(report.stack)
    report.failed_tasks = [task for name in (WEB, CRON, PROXY) for task in failed_tasks(port, final.get(name), since, found.nodes)]
    measure(port, final.get(WEB), release, found.nodes, found.variants, found.before, report, since)
    report.healthy = all(state in SETTLED for state in (report.update_state, report.cron_state, report.proxy_state))
    if not report.healthy:
        report.error = outcome_error(report, cron_message, config)
    report.seconds = round(clock.monotonic() - started, 2)
    return report


def outcome_error(report: SwarmReport, cron_message: str | None, config: DeployConfig) -> str:
    """Pure: the one line for a swarm deploy that did not complete."""
    service = f"{report.stack}_{WEB}"
    unreachable = [t for t in report.failed_tasks if "No such image" in (t["error"] or "") or "pull" in (t["error"] or "").lower()]
    if report.update_state == "paused":
        return (f"the update of {service} to {report.version} is paused by Swarm ({report.update_message or 'a task failed'}): "
                f"resume it with `docker service update --detach=false {service}` on a manager, or go back with `invoke rollback`")
    if unreachable:
        first = unreachable[0]
        return pull_hint(first["node"], config.registry, first["error"]).replace("; nothing was changed", "") + f"; the update {report.update_state}"
    if report.update_state == "rolled back":
        why = report.failed_tasks[0]["error"] if report.failed_tasks else report.update_message
        return f"{report.version} failed on the swarm ({why}): Swarm rolled {service} back; {report.previous or 'the previous release'} is serving"
    if report.update_state == "failed":
        return (f"{report.version} failed on the swarm ({report.update_message}): its tasks keep failing and there is "
                f"no previous release to roll back to; fix the release and deploy again, or `docker stack rm {report.stack}`")
    if report.update_state not in SETTLED:
        return f"the update of {service} to {report.version} {report.update_state} ({report.update_message}): see `invoke status`"
    if report.proxy_state not in SETTLED and report.proxy_state:
        proxy = f"{report.stack}_{PROXY}"
        if report.proxy_state == "rolled back":
            return (f"the new proxy failed on the swarm ({report.proxy_message or 'a task failed'}): Swarm rolled {proxy} back, "
                    f"the previous one serves on every node; fix deploy.proxy_image or docker-stack.yml and deploy again")
        return (f"the update of {proxy} {report.proxy_state} ({report.proxy_message or 'no message'}): a node may have no proxy; "
                f"see `docker service ps {proxy}` on a manager")
    return f"cron of {report.version} did not start ({report.cron_state}: {cron_message}); see `invoke status`"

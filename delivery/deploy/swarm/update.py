"""The rolling update Swarm runs, started and watched: stack deploy, web, then cron, and the proxy beside them.

Swarm does the rolling (docker-stack.yml: start-first, one task at a time, failure_action rollback,
a monitor window); these steps start it (`docker stack deploy`), wait for each service's update to
end (completed, rolled back, paused; or converged, for a service this deploy created), move cron
once web runs the release, and note the nodes the manager sees go down meanwhile.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from delivery.config.settings import DeployConfig
from delivery.deploy.swarm import stack as stackfile
from delivery.deploy.swarm.measure import SwarmReport
from delivery.deploy.swarm.port import CRON, PROXY, SYSTEM_CLOCK, WEB, Clock, SwarmPort, SwarmRelease
from delivery.docker.swarm import Service
from delivery.reporting import Reporter

DONE_STATES = {"completed": "completed", "rollback_completed": "rolled back", "paused": "paused", "rollback_paused": "paused"}
SETTLED = ("completed", "created", "unchanged")  # a service that runs what the stack file names
PROXY_NODE_SECONDS = 40  # the longest a node's proxy replacement may take: its stop grace (10 s), a start, the monitor

Watch = Callable[[], None]


def stack_deploy(port: SwarmPort, stack: str, document: Mapping[str, Any], files: Mapping[str, str]) -> None:
    """`docker stack deploy` of the document (and its config files), written to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="production-control-stack-") as tmp:
        port.stack_deploy(stack, stackfile.write_stack(Path(tmp), document, files))


def converged(port: SwarmPort, service: Service, started: float) -> tuple[str, str | None] | None:
    """A service with no update of this deploy: (unchanged or created) once its tasks run, (failed, why) for a new
    service whose tasks keep failing, None while neither."""
    if service.replicas is None:  # global (the proxy): Swarm starts an update at once when a task must change
        return ("unchanged" if service.previous else "created"), None
    current = port.tasks(service.id)
    running = [t for t in current if t.state == "running" and t.desired_state == "running"]
    if len(running) >= service.replicas:
        return ("unchanged" if service.update_state else "created"), None
    # A new service has nothing to roll back to: tasks that keep failing end the wait.
    failed = [t for t in current if t.state in ("failed", "rejected") and t.created_at >= started - 1]
    if not service.update_state and len(failed) >= max(3, service.replicas):
        return "failed", failed[0].error or failed[0].state
    return None


def wait_update(port: SwarmPort, stack: str, name: str, started: float, timeout: float, reporter: Reporter,
                watch_nodes: Watch = lambda: None, clock: Clock = SYSTEM_CLOCK) -> tuple[str, str | None]:
    """Wait until the service's update ends; (state, message). A service created by this deploy: until it converges."""
    deadline = clock.monotonic() + timeout
    last = None
    while clock.monotonic() < deadline:
        watch_nodes()
        service = port.services(stack).get(name)
        if service is None:
            return "missing", f"the stack has no {name} service"
        state = service.update_state
        if state and service.update_started >= started - 5:
            if state != last:
                reporter.step(f"  {name}: update {state}" + (f" ({service.update_message})" if service.update_message else ""))
                last = state
            if state in DONE_STATES:
                return DONE_STATES[state], service.update_message
        elif clock.time() - started > 3:  # no update of this deploy (a new service, or nothing changed)
            settled = converged(port, service, started)
            if settled is not None:
                return settled
        clock.sleep(1)
    return "timed out", f"still updating after {timeout:.0f}s"


def node_watch(port: SwarmPort, report: SwarmReport, reporter: Reporter) -> Watch:
    """A check, run while waiting, that says (once) each node the manager sees not ready, and notes it in the report."""
    def watch_nodes() -> None:
        for node in port.nodes().values():
            if node.state != "ready" and node.name not in report.nodes_down:
                reporter.step(f"{node.name}: the manager sees it {node.state}")
                report.nodes_down.append(node.name)

    return watch_nodes


def start_update(port: SwarmPort, report: SwarmReport, document: Mapping[str, Any], files: Mapping[str, str],
                 reporter: Reporter, clock: Clock) -> float:
    """`docker stack deploy`: Swarm starts the rolling update. When it started (UNIX time)."""
    reporter.step(f"{report.manager}: deploying stack {report.stack} with {report.version} (previous: {report.previous or 'none'})")
    started = clock.time()
    stack_deploy(port, report.stack, document, files)
    return started


def update_web(port: SwarmPort, config: DeployConfig, report: SwarmReport, since: float, watch: Watch, reporter: Reporter,
               clock: Clock) -> None:
    """Wait for web's update: its state, message and seconds go into the report."""
    timeout = config.replicas * (config.health_timeout + config.monitor + 30) + config.pull_timeout
    report.update_state, report.update_message = wait_update(port, report.stack, WEB, since, timeout, reporter, watch, clock)
    report.update_seconds = round(clock.time() - since, 2)


def move_cron(port: SwarmPort, config: DeployConfig, release: SwarmRelease, report: SwarmReport, old_cron: str | None,
              since: float, watch: Watch, reporter: Reporter, clock: Clock) -> str | None:
    """Once web runs the release, cron moves to it (else it keeps its release); cron's message."""
    stack = report.stack
    if report.update_state not in SETTLED:
        report.cron_state = f"kept {old_cron or 'none'}"
        return None
    if old_cron and old_cron != release.tag:
        reporter.step(f"{report.manager}: web runs {release.tag}: moving cron")
        # The image the stack file names (tag pinned to the digest, as `stack deploy` pins it), so the
        # next `stack deploy` finds cron unchanged. Not a second `stack deploy`: that would re-apply
        # web's spec and make it web's previous one, which `invoke rollback` goes back to.
        port.update_image(f"{stack}_{CRON}", f"{release.image}@{release.digest}", what=f"moving {stack}_{CRON} to {release.tag}")
    report.cron_state, message = wait_update(port, stack, CRON, since, config.health_timeout + 60, reporter, watch, clock)
    return message


def wait_proxy(port: SwarmPort, report: SwarmReport, node_count: int, since: float, watch: Watch, reporter: Reporter,
               clock: Clock) -> None:
    """The proxy's update (if its definition changed) ran beside web's: node after node, a stop and a start each."""
    report.proxy_state, report.proxy_message = wait_update(port, report.stack, PROXY, since, PROXY_NODE_SECONDS * max(1, node_count),
                                                           reporter, watch, clock)

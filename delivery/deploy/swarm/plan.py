"""Before a swarm deploy changes anything: what each node will download, the stack it will run, the proxy's fate.

- `survey`: the nodes, their layers (from the engines deploy.nodes lists), each node's platform image of
  the release (a release without one stops here) and its predicted pull, the stack's running services;
- `stack_env` and `wanted_stack`: the stack document compose merges for the release;
- `proxy_change`: whether Swarm will replace the proxy's tasks, and why;
- `predict`: the report's per-node predictions, the lines --dry-run prints.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient

from delivery.config.settings import DeployConfig
from delivery.deploy.swarm import stack as stackfile
from delivery.deploy.swarm.measure import NodeReport, SwarmReport, node_layers
from delivery.deploy.swarm.port import CRON, PROXY, WEB, ReleaseVariant, SwarmPort, SwarmRelease, tag_of
from delivery.docker.swarm import Node, Service
from delivery.release.pullreport import HostLayers, PullPlan, plan_pull
from delivery.reporting import Reporter

# What docker stack deploy records of each service: the image as the stack file names it (before Swarm pins a digest).
STACK_IMAGE_LABEL = "com.docker.stack.image"


@dataclass(frozen=True)
class Survey:
    """What a deploy found before it changes anything."""

    nodes: dict[str, Node]
    before: dict[str, HostLayers | None]  # each node's layers (None: no engine, or it did not answer)
    variants: dict[str, ReleaseVariant]  # each node's platform image of the release
    plans: dict[str, PullPlan | None]
    current: dict[str, Service]  # the stack's services now, by short name

    def image_of(self, name: str) -> str | None:
        service = self.current.get(name)
        return service.image if service else None


def survey(port: SwarmPort, config: DeployConfig, release: SwarmRelease, reporter: Reporter) -> Survey:
    """The nodes, their layers and predicted pulls, the running services; nothing changes."""
    nodes = port.nodes()
    for problem in port.attach(config.nodes, nodes):
        reporter.step(f"node engine {problem}: no per-node prediction or measurement for it")
    before: dict[str, HostLayers | None] = {}
    for node_id in nodes:
        layers = node_layers(port, node_id)
        before[node_id] = layers if isinstance(layers, HostLayers) else None
    # Each node pulls its own platform's image: a release without it stops here, before anything changes.
    variants = {nid: release.variant(node.platform, node.name) for nid, node in nodes.items()}
    plans = {nid: (plan_pull(release.image, variants[nid].manifest, variants[nid].diff_ids, layers) if layers else None)
             for nid, layers in before.items()}
    return Survey(nodes, before, variants, plans, port.services(config.compose_project))


def predict(found: Survey, document: Mapping[str, Any], host: str, stack: str, release: SwarmRelease, dry_run: bool,
            reporter: Reporter) -> SwarmReport:
    """The report before the update: the previous release, the proxy's change, each node's predicted pull."""
    report = SwarmReport(manager=host, stack=stack, image=release.image, version=release.tag, digest=release.digest)
    report.previous = tag_of(found.image_of(WEB))
    report.proxy_change = proxy_change(found.current.get(PROXY), document)
    if report.proxy_change:
        reporter.step(proxy_warning(host, report.proxy_change, dry_run))
    for node in found.nodes.values():
        plan = found.plans[node.id]
        entry = NodeReport(node.name, node.address, node.state)
        if plan is not None:
            entry.predicted_layers, entry.predicted_bytes = plan.pulled_layers, plan.pulled_bytes
        else:
            entry.note = "no engine listed in deploy.nodes for it: nothing predicted or measured"
        report.nodes.append(entry)
        reporter.step(f"{node.name}: " + (f"would pull {plan.pulled_layers}/{plan.total_layers} layers, {plan.pulled_bytes} bytes (predicted)"
                                          if plan else "no prediction (engine not listed)"))
    return report


def old_cron(found: Survey) -> str | None:
    """The release cron runs now: web moves first, cron keeps it until web's update completed (as on compose hosts)."""
    return tag_of(found.image_of(CRON))


def proxy_slots(replicas: int) -> int:
    """Pure: the proxy's server-template slots for `replicas` web tasks: one more for the start-first
    update's extra task, and never fewer than the 8 the stack file has by default."""
    return max(8, replicas + 1)


def stack_env(config: DeployConfig, tag: str, cron_tag: str | None = None, digest: str | None = None) -> dict[str, str]:
    """Pure: the variables docker-compose.yml and docker-stack.yml are merged with. Web's image names the
    release by tag and digest: `--resolve-image changed` then re-resolves exactly what changed."""
    env = {"REGISTRY": config.registry, "APP_TAG": f"{tag}@{digest}" if digest else tag, "CRON_TAG": cron_tag or tag,
           "HTTP_PORT": str(config.http_port), "SITE_NAME": config.site_name,
           "WEB_REPLICAS": str(config.replicas), "PROXY_SLOTS": str(proxy_slots(config.replicas)),
           "UPDATE_MONITOR": f"{max(config.monitor, 1):g}s"}
    if config.proxy_image:
        env["PROXY_IMAGE"] = config.proxy_image
    if config.cron_schedule:
        env["CRON_SCHEDULE"] = config.cron_schedule
    return env


def wanted_stack(manager: DockerClient, config: DeployConfig, root: Path, tag: str, cron_tag: str | None = None,
                 digest: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The stack document and its config files for `tag` (compose merges the files; nothing is written)."""
    model = stackfile.compose_model(manager.docker_cmd, root, stack_env(config, tag, cron_tag, digest), config.compose_project)
    return stackfile.stack_document(model, config.compose_project)


def proxy_change(running: Service | None, document: Mapping[str, Any]) -> str | None:
    """Pure: why Swarm will replace the proxy's tasks (what differs between the running proxy service and the
    stack document's), or None when it will leave them alone (the same definition, or no proxy yet).

    With `--resolve-image changed`, an image named as before keeps the digest it runs: a tag that moved in
    the registry (haproxy:3.0-bookworm) reaches the nodes only when deploy.proxy_image names a new one.
    """
    if running is None:
        return None
    wanted = document["services"][PROXY]
    labels = running.labels
    if labels.get(stackfile.DEFINITION_LABEL) == wanted["deploy"]["labels"][stackfile.DEFINITION_LABEL]:
        return None
    reasons = []
    if labels.get(STACK_IMAGE_LABEL) != wanted.get("image"):
        reasons.append(f"image {labels.get(STACK_IMAGE_LABEL) or '?'} -> {wanted.get('image')}")
    running_configs = list(running.config_names)
    wanted_configs = stackfile.config_names(wanted, document.get("configs") or {})
    if running_configs != wanted_configs:
        reasons.append(f"configuration {', '.join(running_configs) or 'none'} -> {', '.join(wanted_configs) or 'none'}")
    running_ports = list(running.published_ports)
    wanted_ports = sorted(p.get("published") for p in wanted.get("ports") or [])
    if running_ports != wanted_ports:
        reasons.append(f"port {', '.join(map(str, running_ports)) or 'none'} -> {', '.join(map(str, wanted_ports)) or 'none'}")
    if not reasons:
        reasons.append("its definition in docker-compose.yml or docker-stack.yml" if stackfile.DEFINITION_LABEL in labels
                       else "no record of its definition: an older toolkit deployed it")
    return "; ".join(reasons)


def proxy_warning(host: str, change: str, dry_run: bool = False) -> str:
    """Pure: the one line said before a deploy that replaces the proxy."""
    return (f"{host}: the proxy {'would be' if dry_run else 'will be'} replaced ({change}): Swarm replaces it node after "
            "node, stop-first (two tasks cannot bind one host-mode port), so each node refuses connections for a few "
            "seconds meanwhile (predicted; docs/cluster.md, Proxy updates)")

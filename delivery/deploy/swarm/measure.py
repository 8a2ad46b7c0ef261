"""The swarm deploy's report, and what it measures per node after the update.

Per node: the layers and bytes of the release that arrived (its engine's layers before and after
the update, compared), the pull's seconds (its engine's pull event, from the first task of the
release on it), its web tasks running the release, and the manager's view of its state.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from delivery.deploy.swarm.port import ReleaseVariant, SwarmPort, SwarmRelease
from delivery.docker.swarm import Node, NodeImages, Service, Task, Unanswered
from delivery.registry.client import Manifest
from delivery.release.pullreport import HostLayers, host_layers, plan_pull


@dataclass
class NodeReport:
    node: str
    address: str
    state: str  # the manager's view at the end: ready / down
    measured: bool = False  # its engine answered before and after: measured_* are measurements
    predicted_layers: int | None = None
    predicted_bytes: int | None = None
    measured_layers: int | None = None  # the release's layers that arrived on the node
    measured_bytes: int | None = None
    pull_seconds: float | None = None
    tasks: int = 0  # web tasks running the release at the end
    note: str | None = None


@dataclass
class SwarmReport:
    manager: str
    stack: str
    image: str
    version: str
    digest: str
    previous: str | None = None
    update_state: str = ""  # completed, rolled back, paused, created, unchanged, timed out
    update_seconds: float = 0.0
    update_message: str | None = None
    cron_state: str = ""
    proxy_change: str | None = None  # predicted: why Swarm replaces the proxy (None: it leaves it alone)
    proxy_state: str = ""  # observed: unchanged, created, completed, rolled back, paused, timed out
    proxy_message: str | None = None
    pre_pull: bool = False
    pre_pull_seconds: float | None = None
    nodes: list[NodeReport] = field(default_factory=list)
    failed_tasks: list[dict[str, Any]] = field(default_factory=list)
    nodes_down: list[str] = field(default_factory=list)
    healthy: bool = False
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"mode": "swarm", "host": self.manager, **asdict(self)}


def node_layers(port: SwarmPort, node_id: str) -> HostLayers | Unanswered | None:
    """The node's layers, or why its engine did not answer; None for a node without an engine."""
    found = port.images(node_id)
    return host_layers(found.store, found.images) if isinstance(found, NodeImages) else found


def measured_pull(release_manifest: Manifest, diff_ids: tuple[str, ...], before: HostLayers, after: HostLayers) -> tuple[int, int]:
    """Pure: (layers, bytes) of the release that arrived on a node between two looks at its layers."""
    plan_before = plan_pull("", release_manifest, diff_ids, before)
    plan_after = plan_pull("", release_manifest, diff_ids, after)
    arrived = set(plan_before.pulled_digests) - set(plan_after.pulled_digests)
    sizes = {blob.digest: blob.size for blob in release_manifest.layers}

    def present(host: HostLayers) -> bool:
        return release_manifest.digest in host.image_ids or release_manifest.config.digest in host.image_ids

    config_bytes = release_manifest.config.size if present(after) and not present(before) else 0
    return len(arrived), sum(sizes[d] for d in arrived) + config_bytes


def tally_tasks(tasks: Iterable[Task], digest: str, since: float) -> tuple[dict[str, int], dict[str, float]]:
    """Pure: per node id, web's tasks running the release, and when the node's first task of this deploy was created."""
    running: dict[str, int] = {}
    created: dict[str, float] = {}
    for task in tasks:
        node_id = task.node_id or ""
        if task.created_at >= since - 1:
            created[node_id] = min(created.get(node_id, 1e18), task.created_at)
        if task.state == "running" and digest in task.image:
            running[node_id] = running.get(node_id, 0) + 1
    return running, created


def measure(port: SwarmPort, web: Service | None, release: SwarmRelease, nodes: Mapping[str, Node],
            variants: Mapping[str, ReleaseVariant], before: Mapping[str, HostLayers | None], report: SwarmReport, since: float) -> None:
    """Per node: the layers that arrived (its engine's layers before and after) and the pull's seconds.

    `variants` is each node's image of the release, as the prediction chose it.
    """
    running, created = tally_tasks(port.tasks(web.id) if web else [], release.digest, since)
    states = port.nodes()
    for entry, node in zip(report.nodes, nodes.values(), strict=False):
        entry.state = states[node.id].state if node.id in states else "gone"
        entry.tasks = running.get(node.id, 0)
        earlier = before[node.id]
        if earlier is None:
            continue
        after = node_layers(port, node.id)
        if not isinstance(after, HostLayers):
            reason = after.reason if after is not None else "no engine"
            entry.note = f"its engine stopped answering during the update ({reason}): nothing measured"
            continue
        entry.measured = True
        variant = variants[node.id]
        entry.measured_layers, entry.measured_bytes = measured_pull(variant.manifest, variant.diff_ids, earlier, after)
        if entry.pull_seconds is None and entry.measured_layers and node.id in created:
            pulled_at = port.pulled_at(node.id, since, (release.tag, release.digest))
            if pulled_at is not None:
                entry.pull_seconds = round(max(0.0, pulled_at - created[node.id]), 2)

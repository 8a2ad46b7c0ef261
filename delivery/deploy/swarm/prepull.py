"""The optional pre-pull (deploy.pre_pull): every ready node with an engine pulls the release before the update.

A node that cannot pull stops the deploy before anything changes, in one line that says what to
check on that node (route, DNS, trust, credentials).
"""
from __future__ import annotations

from collections.abc import Mapping

from delivery.deploy.swarm.port import Clock, SwarmPort, SwarmRelease
from delivery.docker.swarm import Node
from delivery.errors import DeliveryError
from delivery.reporting import Reporter


def pull_hint(node: str, registry: str, reason: str) -> str:
    """Pure: the one line for a node that cannot pull from the registry."""
    return (f"{node} cannot pull from {registry} ({reason}): check that node's route and DNS to the registry, its "
            f"trust (/etc/docker/certs.d/{registry}/ca.crt or insecure-registries) and credentials; nothing was changed")


def pre_pull(port: SwarmPort, release: SwarmRelease, nodes: Mapping[str, Node], registry: str, reporter: Reporter,
             clock: Clock) -> dict[str, float]:
    """Pull the release on each ready node that has an engine; the seconds each took, by node id."""
    seconds = {}
    for node in nodes.values():
        if not port.has_engine(node.id) or node.state != "ready":
            continue
        reporter.step(f"{node.name}: pre-pulling {release.tag}")
        started = clock.monotonic()
        problem = port.pull(node.id, f"{release.image}@{release.digest}")
        if problem is not None:
            raise DeliveryError(pull_hint(node.name, registry, problem))
        seconds[node.id] = round(clock.monotonic() - started, 2)
    return seconds

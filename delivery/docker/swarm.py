"""Swarm through the docker CLI: a manager's nodes, services and tasks as typed records, and the node engines.

`docker ... inspect` gives deep JSON; the pure `parse_*` functions read the few fields the swarm
strategy uses into small frozen dataclasses (Node, Service, Task), so nothing above this module
indexes raw JSON. `Manager` is the impure side: the manager's CLI (list, inspect, stack deploy,
service update and rollback) and the engines of deploy.nodes, matched to their swarm node by id
(`docker info` on each engine). It is the real implementation of the port delivery/deploy/swarm/port.py
describes; unit tests fake that port and feed the parsers JSON samples.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.config.hosts import Host, parse_host
from delivery.config.platforms import engine_platform
from delivery.docker.engine import connect, image_layers, image_store, last_line, read_info
from delivery.errors import DeliveryError

EPOCH = "1970-01-01T00:00:00Z"
# Always with the registry login of this machine's docker CLI (`docker login`, or deploy.registry_user's): without
# it the workers pull anonymously. `--resolve-image changed`: a service whose image is named as before keeps the
# digest it runs, so a moved tag never replaces the proxy during an ordinary release.
STACK_DEPLOY = ("stack", "deploy", "--with-registry-auth", "--resolve-image", "changed", "--detach=true", "--prune")


# -- the records ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    """A swarm node as its manager knows it."""

    id: str
    name: str
    address: str
    state: str  # ready, down, unknown
    availability: str
    platform: str = "linux/amd64"  # what the node pulls: its engine's OS and architecture, as the manager knows them


@dataclass(frozen=True)
class Service:
    """A service of the stack: what it runs, how many, and its last update."""

    id: str
    name: str  # the full name: <stack>_web
    image: str  # the image its spec names (tag@digest once Swarm pinned it)
    replicas: int | None = None  # None: a global service (the proxy)
    labels: Mapping[str, str] = field(default_factory=dict)
    config_names: tuple[str, ...] = ()  # the swarm configs its containers mount, sorted
    published_ports: tuple[int, ...] = ()  # sorted
    update_state: str = ""  # Swarm's UpdateStatus.State ("" when it never updated)
    update_message: str | None = None
    update_started: float = 0.0  # UNIX time
    previous: bool = False  # Swarm keeps a previous spec (what `docker service rollback` goes back to)
    previous_image: str | None = None


@dataclass(frozen=True)
class Task:
    """One task of a service."""

    id: str
    node_id: str | None
    created_at: float  # UNIX time
    desired_state: str
    state: str
    image: str
    error: str | None = None  # Status.Err
    message: str | None = None  # Status.Message
    container_id: str | None = None


@dataclass(frozen=True)
class NodeImages:
    """The images on a node's engine: (id, repo digests, layer diff ids) each, and its image store."""

    store: str
    images: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]


@dataclass(frozen=True)
class Unanswered:
    """A node engine that did not answer: why, in one line."""

    reason: str


# -- pure parsing -----------------------------------------------------------------------------------
def parse_time(text: str) -> float:
    """Docker's RFC 3339 times (nanoseconds) as a UNIX timestamp."""
    text = text.rstrip("Z")
    main, _, frac = text.partition(".")
    stamp = datetime.fromisoformat(main).replace(tzinfo=UTC).timestamp()
    return stamp + (float(f"0.{frac[:6]}") if frac else 0.0)


def parse_node(doc: Mapping[str, Any]) -> Node:
    """Pure: a node of `docker node inspect`."""
    platform = doc["Description"].get("Platform") or {}
    return Node(doc["ID"], doc["Description"]["Hostname"], doc["Status"].get("Addr", ""), doc["Status"]["State"],
                doc["Spec"].get("Availability", ""), platform=engine_platform(platform.get("OS"), platform.get("Architecture")))


def parse_service(doc: Mapping[str, Any]) -> Service:
    """Pure: a service of `docker service inspect`."""
    spec = doc["Spec"]
    container = spec["TaskTemplate"]["ContainerSpec"]
    update = doc.get("UpdateStatus") or {}
    previous = doc.get("PreviousSpec")
    previous_container = ((previous or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
    ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
    return Service(
        id=doc["ID"], name=spec["Name"], image=container["Image"],
        replicas=((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas"),
        labels=dict(spec.get("Labels") or {}),
        config_names=tuple(sorted(c.get("ConfigName", "?") for c in container.get("Configs") or [])),
        published_ports=tuple(sorted(p.get("PublishedPort") for p in ports)),
        update_state=update.get("State") or "", update_message=update.get("Message"),
        update_started=parse_time(update.get("StartedAt", EPOCH)),
        previous=bool(previous), previous_image=previous_container.get("Image"),
    )


def parse_task(doc: Mapping[str, Any]) -> Task:
    """Pure: a task of `docker inspect` (of a `docker service ps` id)."""
    status = doc["Status"]
    return Task(id=doc["ID"], node_id=doc.get("NodeID"), created_at=parse_time(doc["CreatedAt"]), desired_state=doc["DesiredState"],
                state=status["State"], image=doc["Spec"]["ContainerSpec"]["Image"], error=status.get("Err"),
                message=status.get("Message"), container_id=(status.get("ContainerStatus") or {}).get("ContainerID"))


def pull_event_time(output: str, names: Sequence[str]) -> float | None:
    """Pure: when `docker events --format '{{json .}}'` output first reports a pull of an image naming one of `names`."""
    for line in output.splitlines():
        event = json.loads(line)
        if any(name in event.get("id", "") for name in names):
            return float(event.get("timeNano", 0)) / 1e9
    return None


def manager_error(host: str, state: str, control: bool, error: str = "") -> str | None:
    """Pure: the one-line error for an engine that cannot run a stack, or None for a manager."""
    if state == "inactive":
        return f"the engine at {host} is not in a swarm: initialise one with `docker swarm init` on it (docs/cluster.md, Set up)"
    if state in ("pending", "locked", "error"):
        return f"the swarm of the engine at {host} is {state}{f' ({error})' if error else ''}: fix it with `docker swarm` on that node"
    if not control:
        return (f"the engine at {host} is a swarm worker, not a manager: point --host at a manager "
                "(`docker node ls` on a manager lists them)")
    return None


# -- the docker CLI ---------------------------------------------------------------------------------
def cli(docker: DockerClient, *args: str, what: str) -> str:
    """Run `docker <args>` on that engine; its output, or one line naming `what` failed."""
    try:
        return str(run([*docker.docker_cmd, *args]))
    except DockerException as exc:
        raise DeliveryError(f"{what} failed: {last_line(exc)}") from exc


def inspect(docker: DockerClient, *ids: str, what: str) -> list[dict[str, Any]]:
    """`docker inspect` of ids; ones that vanished in the meantime (old tasks Swarm pruned) are skipped."""
    if not ids:
        return []
    try:
        documents: list[dict[str, Any]] = json.loads(str(run([*docker.docker_cmd, "inspect", *ids])))
        return documents
    except DockerException:
        found: list[dict[str, Any]] = []
        for one in ids:
            with contextlib.suppress(DockerException):
                found.extend(json.loads(str(run([*docker.docker_cmd, "inspect", one]))))
        if not found:
            cli(docker, "inspect", *ids, what=what)  # not a race: say what failed
        return found


@dataclass
class NodeEngine:
    """A node's own engine (listed in deploy.nodes) and its image store."""

    docker: DockerClient
    store: str


class Manager:
    """The swarm through a manager's docker CLI, plus the engines of the nodes deploy.nodes lists."""

    def __init__(self, docker: DockerClient, label: str) -> None:
        self.docker = docker
        self.label = label
        self.engines: dict[str, NodeEngine] = {}

    # reads
    def nodes(self) -> dict[str, Node]:
        ids = [line for line in cli(self.docker, "node", "ls", "-q", what="listing the swarm's nodes").split() if line]
        return {doc["ID"]: parse_node(doc) for doc in inspect(self.docker, *ids, what="inspecting the swarm's nodes")}

    def services(self, stack: str) -> dict[str, Service]:
        """The stack's services by short name (web, cron, proxy)."""
        ids = cli(self.docker, "service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}",
                  what="listing the stack's services").split()
        found = {}
        for doc in inspect(self.docker, *ids, what="inspecting the stack's services"):
            service = parse_service(doc)
            found[service.name.removeprefix(f"{stack}_")] = service
        return found

    def tasks(self, service_id: str) -> list[Task]:
        ids = cli(self.docker, "service", "ps", "-q", "--no-trunc", service_id, what="listing the service's tasks").split()
        return [parse_task(doc) for doc in inspect(self.docker, *ids, what="inspecting the service's tasks")]

    # changes
    def stack_deploy(self, stack: str, path: Path) -> None:
        cli(self.docker, *STACK_DEPLOY, "-c", str(path), stack, what=f"docker stack deploy on {self.label}")

    def update_image(self, service: str, image: str, what: str) -> None:
        cli(self.docker, "service", "update", "--detach", "--image", image, service, what=what)

    def rollback_service(self, service: str) -> None:
        cli(self.docker, "service", "rollback", "--detach", service, what=f"rolling back {service}")

    # the node engines
    def attach(self, hosts: Iterable[str], nodes: Mapping[str, Node]) -> list[str]:
        """Connect each engine of `hosts` (deploy.nodes) to its swarm node (by node id); the engines that did not answer."""
        unreachable = []
        for value in hosts:
            host = parse_host(value)
            docker = connect(host)
            try:
                info = read_info(docker)
            except DockerException as exc:
                unreachable.append(f"{host.label} ({last_line(exc)})")
                continue
            node_id = (info.get("Swarm") or {}).get("NodeID", "")
            if node_id not in nodes:
                unreachable.append(f"{host.label} (not a node of this swarm)")
                continue
            self.engines[node_id] = NodeEngine(docker, image_store(info.get("DriverStatus")))
        return unreachable

    def has_engine(self, node_id: str) -> bool:
        return node_id in self.engines

    def images(self, node_id: str) -> NodeImages | Unanswered | None:
        """The node's images, or why its engine did not answer; None for a node without an engine."""
        engine = self.engines.get(node_id)
        if engine is None:
            return None
        try:
            images = image_layers(engine.docker)
        except DockerException as exc:
            return Unanswered(last_line(exc))
        return NodeImages(engine.store, tuple((image, tuple(digests), tuple(layers)) for image, digests, layers in images))

    def pull(self, node_id: str, reference: str) -> str | None:
        """`docker pull` on the node's engine; None when it pulled, else the one line why not."""
        try:
            run([*self.engines[node_id].docker.docker_cmd, "pull", "--quiet", reference])
        except DockerException as exc:
            return last_line(exc)
        return None

    def pulled_at(self, node_id: str, since: float, names: Sequence[str]) -> float | None:
        """When the node's engine reported an image naming one of `names` pulled (its `docker events` since `since`)."""
        try:
            out = run([*self.engines[node_id].docker.docker_cmd, "events", "--since", f"{since - 1:.0f}", "--until", f"{time.time():.0f}",
                       "--filter", "type=image", "--filter", "event=pull", "--format", "{{json .}}"])
        except DockerException:
            return None
        return pull_event_time(str(out), names)

    def container_health(self, node_id: str | None, container_id: str) -> str | None:
        """The container's health from its node's engine; None when there is no engine or it did not answer."""
        engine = self.engines.get(node_id or "")
        if engine is None:
            return None
        with contextlib.suppress(DockerException):
            state = engine.docker.container.inspect(container_id).state
            return state.health.status if state.health else ("no healthcheck" if state.status == "running" else state.status)
        return None


def open_manager(host: Host) -> Manager:
    """The swarm manager at `host`; one line when the engine is not reachable or is not a manager."""
    docker = connect(host)
    try:
        info = read_info(docker)
    except DockerException as exc:
        raise DeliveryError(f"the Docker engine at {host.label} is not reachable: {last_line(exc)} (check --host)") from exc
    swarm = info.get("Swarm") or {}
    problem = manager_error(host.label, swarm.get("LocalNodeState", "inactive"), bool(swarm.get("ControlAvailable")), swarm.get("Error", ""))
    if problem:
        raise DeliveryError(problem)
    return Manager(docker, host.label)

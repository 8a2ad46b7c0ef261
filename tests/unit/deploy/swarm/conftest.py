"""What the swarm unit tests share: a fake swarm port (two ready nodes, web, cron and a proxy; the update
completes) and a fake clock, the release and the stack document it deploys, and compose's model of a stack with
one part of the proxy changed. Imported by name: pytest runs with --import-mode=importlib, so this module is
tests.unit.deploy.swarm.conftest."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from delivery.config.settings import DeployConfig, load_config
from delivery.deploy.swarm.stack import DEFINITION_LABEL, stack_document
from delivery.docker.swarm import Node, NodeImages, Service, Task, Unanswered
from delivery.registry.client import Blob, Manifest
from delivery.release.release import Release, Variant


def model() -> dict:
    return {
        "name": "production-control",
        "services": {
            "web": {"image": "r/app:1", "entrypoint": None, "tmpfs": ["/run", "/tmp:size=64m"],
                    "volumes": [{"type": "volume", "source": "data", "target": "/data"}]},
            "proxy": {"image": "haproxy", "ports": [{"mode": "host", "target": 8080, "published": "8000", "protocol": "tcp"}],
                      "configs": [{"source": "haproxy-swarm", "target": "/etc/haproxy.cfg"}]},
        },
        "configs": {"haproxy-swarm": {"content": "global\n"}},
    }


def changed_model(what: str) -> dict:
    changed = model()
    proxy = changed["services"]["proxy"]
    if what == "image":
        proxy["image"] = "haproxy:3.0.7"
    elif what == "config":
        changed["configs"]["haproxy-swarm"]["content"] = "global\n  maxconn 10\n"
    elif what == "port":
        proxy["ports"][0]["published"] = "8080"
    elif what == "definition":
        proxy["read_only"] = True
    return changed


T0 = 1000.0  # the fake clock's start: the update starts then


DIGEST = "sha256:" + "d" * 64


STACK = "production-control"


class FakeClock:
    """Wall and monotonic time in one counter; sleep advances it."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeSwarm:
    """A swarm port: services by phase (before the stack deploy, after it, after cron's update), and recorded changes."""

    label: str = "manager1"
    node_list: dict[str, Node] = field(default_factory=dict)
    before: dict[str, Service] = field(default_factory=dict)
    deployed: dict[str, Service] = field(default_factory=dict)  # what services() shows after the stack deploy
    cron_moved: dict[str, Service] | None = None  # ... and after cron's update (default: as deployed)
    task_list: dict[str, list[Task]] = field(default_factory=dict)
    engines: set[str] = field(default_factory=set)
    unreachable: list[str] = field(default_factory=list)
    looks: dict[str, list[NodeImages | Unanswered]] = field(default_factory=dict)  # successive images() answers per node
    pull_errors: dict[str, str] = field(default_factory=dict)
    pull_times: dict[str, float] = field(default_factory=dict)
    health: dict[str, str] = field(default_factory=dict)  # by container id
    nodes_later: dict[str, Node] | None = None  # what nodes() shows once the update started
    calls: list[tuple[str, ...]] = field(default_factory=list)
    phase: str = "before"

    def nodes(self) -> dict[str, Node]:
        return dict(self.nodes_later if self.nodes_later is not None and self.phase != "before" else self.node_list)

    def services(self, stack: str) -> dict[str, Service]:
        assert stack == STACK
        if self.phase == "cron" and self.cron_moved is not None:
            return dict(self.cron_moved)
        return dict(self.deployed if self.phase != "before" else self.before)

    def tasks(self, service_id: str) -> list[Task]:
        return list(self.task_list.get(service_id, []))

    def stack_deploy(self, stack: str, path: Path) -> None:
        assert path.exists()
        self.calls.append(("stack deploy", stack))
        self.phase = "deployed"

    def update_image(self, service: str, image: str, what: str) -> None:
        self.calls.append(("update", service, image))
        self.phase = "cron"

    def rollback_service(self, service: str) -> None:
        self.calls.append(("rollback", service))
        self.phase = "deployed"

    def attach(self, hosts: Iterable[str], nodes: Mapping[str, Node]) -> list[str]:
        self.calls.append(("attach", *hosts))
        return list(self.unreachable)

    def has_engine(self, node_id: str) -> bool:
        return node_id in self.engines

    def images(self, node_id: str) -> NodeImages | Unanswered | None:
        if node_id not in self.engines:
            return None
        answers = self.looks[node_id]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def pull(self, node_id: str, reference: str) -> str | None:
        self.calls.append(("pull", node_id, reference))
        return self.pull_errors.get(node_id)

    def pulled_at(self, node_id: str, since: float, names: Sequence[str]) -> float | None:
        return self.pull_times.get(node_id)

    def container_health(self, node_id: str | None, container_id: str) -> str | None:
        return self.health.get(container_id)


LAYERS = (Blob("sha256:" + "1" * 64, 100), Blob("sha256:" + "2" * 64, 20))


DIFF_IDS = ("sha256:" + "a" * 64, "sha256:" + "b" * 64)


CONFIG = Blob("sha256:" + "c" * 64, 7)


def release(*platforms: str) -> Release:
    variants = tuple(Variant(p, Manifest("sha256:" + "m" * 64, 500, CONFIG, LAYERS), DIFF_IDS) for p in platforms or ("linux/amd64",))
    return Release(tag="1.0.1-b", image="reg:5000/app", digest=DIGEST, variants=variants)


def service(name: str, image: str, replicas: int | None = 2, **changes: Any) -> Service:
    return Service(id=f"id-{name}", name=f"{STACK}_{name}", image=image, replicas=replicas, **changes)


OLD_WEB = "reg:5000/app:1.0.0-a@sha256:" + "0" * 64


NEW_WEB = f"reg:5000/app:1.0.1-b@{DIGEST}"


EMPTY = NodeImages("overlay2", (("sha256:old", (), (DIFF_IDS[0],)),))


PULLED = NodeImages("overlay2", (("sha256:old", (), (DIFF_IDS[0],)), (CONFIG.digest, (), DIFF_IDS)))


def running(service_id: str, node: str, image: str = NEW_WEB, created: float = T0 + 2, state: str = "running", **changes: Any) -> Task:
    return Task(id=f"t-{node}-{created}", node_id=node, created_at=created, desired_state="running", state=state, image=image, **changes)


def proxy_labels() -> dict[str, str]:
    """The labels `docker stack deploy` gave the proxy of `render`'s document."""
    wanted = render(None)[0]["services"]["proxy"]
    return {"com.docker.stack.image": wanted["image"], DEFINITION_LABEL: wanted["deploy"]["labels"][DEFINITION_LABEL]}


def swarm(**changes: Any) -> FakeSwarm:
    """Two ready nodes with engines, web 1.0.0-a and cron 1.0.0-a running, a proxy; the update completes."""
    nodes = {"n1": Node("n1", "node1", "10.0.0.1", "ready", "active"), "n2": Node("n2", "node2", "10.0.0.2", "ready", "active")}
    before = {"web": service("web", OLD_WEB, previous=True), "cron": service("cron", "reg:5000/app:1.0.0-a", replicas=1),
              "proxy": service("proxy", "haproxy:3.0", replicas=None, previous=True, labels=proxy_labels(), published_ports=(8000,))}
    deployed = {**before, "web": replace(before["web"], image=NEW_WEB, update_state="completed", update_started=T0)}
    cron_moved = {**deployed, "cron": replace(before["cron"], image=NEW_WEB, update_state="completed", update_started=T0 + 30)}
    tasks = {"id-web": [running("id-web", "n1"), running("id-web", "n2")]}
    fake = FakeSwarm(node_list=nodes, before=before, deployed=deployed, cron_moved=cron_moved, task_list=tasks,
                     engines={"n1", "n2"}, looks={"n1": [EMPTY, PULLED], "n2": [EMPTY, PULLED]},
                     pull_times={"n1": T0 + 4.5, "n2": T0 + 3.0})
    for key, value in changes.items():
        setattr(fake, key, value)
    return fake


def config(**values: Any) -> DeployConfig:
    return load_config({"mode": "swarm", "nodes": "ssh://n1,ssh://n2", **values})


def render(cron_tag: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The stack document of the release: a proxy with the definition the running one has (so it is left alone)."""
    model = {"services": {"web": {"image": NEW_WEB}, "cron": {"image": f"reg:5000/app:{cron_tag}"},
                          "proxy": {"image": "haproxy:3.0", "ports": [{"published": 8000, "target": 8080}]}}}
    return stack_document(model, STACK)

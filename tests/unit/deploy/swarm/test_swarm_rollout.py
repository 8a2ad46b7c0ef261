"""The swarm deploy, rollback and status as steps over a fake port: each step and each failure path, no engine."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from delivery.config.settings import DeployConfig, load_config
from delivery.deploy.swarm import rollout
from delivery.deploy.swarm.measure import SwarmReport, measure
from delivery.deploy.swarm.plan import survey
from delivery.deploy.swarm.port import ReleaseVariant
from delivery.deploy.swarm.prepull import pre_pull
from delivery.deploy.swarm.stack import DEFINITION_LABEL, stack_document
from delivery.deploy.swarm.update import converged, move_cron, node_watch, stack_deploy, wait_update
from delivery.docker.swarm import Node, NodeImages, Service, Task, Unanswered
from delivery.errors import DeliveryError
from delivery.registry.client import Blob, Manifest
from delivery.release.release import Release, Variant
from delivery.reporting import Recorded

T0 = 1000.0  # the fake clock's start: the update starts then
DIGEST = "sha256:" + "d" * 64
STACK = "production-control"


# -- doubles ---------------------------------------------------------------------------------------
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


def deploy(port: FakeSwarm, cfg: DeployConfig | None = None, dry_run: bool = False, what: Release | None = None,
           clock: FakeClock | None = None) -> tuple[SwarmReport, Recorded, list[str]]:
    said, logins = Recorded(), []
    report = rollout.run_deploy(port, cfg or config(), what or release(), said, render, dry_run, lambda: logins.append("login"),
                                started=T0 - 10, clock=clock or FakeClock())
    return report, said, logins


# -- deploy --------------------------------------------------------------------------------------------
def test_a_deploy_rolls_web_then_moves_cron_and_measures_each_node() -> None:
    port = swarm()
    report, said, logins = deploy(port)
    assert report.healthy and report.error is None
    assert (report.update_state, report.cron_state, report.proxy_state) == ("completed", "completed", "unchanged")
    assert (report.previous, report.version, report.digest) == ("1.0.0-a", "1.0.1-b", DIGEST)
    assert logins == ["login"]
    assert [c for c in port.calls if c[0] != "attach"] == [
        ("stack deploy", STACK), ("update", f"{STACK}_cron", f"reg:5000/app@{DIGEST}")]
    assert "manager1: deploying stack production-control with 1.0.1-b (previous: 1.0.0-a)" in said.lines
    assert "manager1: web runs 1.0.1-b: moving cron" in said.lines
    assert "  web: update completed" in said.lines
    node1, node2 = report.nodes
    assert (node1.predicted_layers, node1.predicted_bytes) == (1, 20 + 7)
    assert node1.measured and (node1.measured_layers, node1.measured_bytes) == (1, 20 + 7)
    assert (node1.tasks, node1.pull_seconds, node2.pull_seconds) == (1, 2.5, 1.0)
    assert report.as_dict()["mode"] == "swarm" and report.as_dict()["host"] == "manager1"


def test_a_dry_run_predicts_each_node_and_changes_nothing() -> None:
    port = swarm()
    report, said, logins = deploy(port, dry_run=True)
    assert report.update_state == "dry run" and logins == []
    assert [c for c in port.calls if c[0] != "attach"] == []
    assert "node1: would pull 1/2 layers, 27 bytes (predicted)" in said.lines
    assert report.proxy_change is None


def test_a_node_without_an_engine_is_neither_predicted_nor_measured() -> None:
    port = swarm(engines={"n1"}, unreachable=["ssh://n2 (connection refused)"])
    report, said, _ = deploy(port)
    assert "node engine ssh://n2 (connection refused): no per-node prediction or measurement for it" in said.lines
    assert "node2: no prediction (engine not listed)" in said.lines
    assert report.nodes[1].note == "no engine listed in deploy.nodes for it: nothing predicted or measured"
    assert not report.nodes[1].measured and report.nodes[1].tasks == 1


def test_an_update_swarm_paused_keeps_cron_and_says_how_to_resume() -> None:
    port = swarm()
    port.deployed["web"] = replace(port.deployed["web"], update_state="paused", update_message="update paused due to failure")
    report, said, _ = deploy(port)
    assert not report.healthy and report.update_state == "paused" and report.cron_state == "kept 1.0.0-a"
    assert not any(c[0] == "update" for c in port.calls)
    assert report.error is not None and "paused by Swarm (update paused due to failure)" in report.error
    assert "  web: update paused (update paused due to failure)" in said.lines


def test_an_update_swarm_rolled_back_names_the_failed_task() -> None:
    port = swarm()
    port.deployed["web"] = replace(port.deployed["web"], update_state="rollback_completed")
    port.task_list["id-web"].append(running("id-web", "n2", state="failed", error="task: non-zero exit (1)"))
    report, _, _ = deploy(port)
    assert report.update_state == "rolled back" and report.failed_tasks == [
        {"service": f"{STACK}_web", "node": "node2", "state": "failed", "error": "task: non-zero exit (1)", "image": "1.0.1-b"}]
    assert report.error == ("1.0.1-b failed on the swarm (task: non-zero exit (1)): Swarm rolled production-control_web back; "
                            "1.0.0-a is serving")


def test_a_node_that_cannot_pull_during_the_update_is_named() -> None:
    port = swarm()
    port.deployed["web"] = replace(port.deployed["web"], update_state="rollback_completed")
    port.task_list["id-web"].append(running("id-web", "n2", state="rejected", error="No such image: reg:5000/app:1.0.1-b"))
    report, _, _ = deploy(port, config(registry="reg:5000"))
    assert report.error is not None and report.error.startswith("node2 cannot pull from reg:5000")
    assert report.error.endswith("; the update rolled back")


def test_a_node_that_cannot_pull_before_the_update_stops_the_deploy_before_anything_changes() -> None:
    port = swarm(pull_errors={"n2": "connection refused"})
    with pytest.raises(DeliveryError, match="^node2 cannot pull from reg:5000 \\(connection refused\\).*nothing was changed$"):
        deploy(port, config(pre_pull=True, registry="reg:5000"))
    assert [c[0] for c in port.calls] == ["attach", "pull", "pull"]


def test_a_pre_pull_times_each_node() -> None:
    port = swarm()
    report, said, _ = deploy(port, config(pre_pull=True))
    assert report.pre_pull and report.pre_pull_seconds == 0.0
    assert [c[1] for c in port.calls if c[0] == "pull"] == ["n1", "n2"]
    assert "node1: pre-pulling 1.0.1-b" in said.lines
    assert [n.pull_seconds for n in report.nodes] == [0.0, 0.0]  # pre-pulled: the update's pull time is not measured again


def test_an_update_that_never_ends_times_out() -> None:
    port = swarm()
    port.deployed["web"] = replace(port.deployed["web"], update_state="updating")
    clock = FakeClock()
    report, _, _ = deploy(port, config(replicas=1, health_timeout=10, monitor=0, pull_timeout=20), clock=clock)
    timeout = 1 * (10 + 0 + 30) + 20
    assert (report.update_state, report.update_message) == ("timed out", f"still updating after {timeout}s")
    assert report.cron_state == "kept 1.0.0-a" and clock.now >= T0 + timeout
    assert report.error == f"the update of production-control_web to 1.0.1-b timed out (still updating after {timeout}s): see `invoke status`"


def test_a_release_without_a_nodes_platform_stops_before_anything_changes() -> None:
    port = swarm()
    port.node_list["n2"] = replace(port.node_list["n2"], platform="linux/arm64")
    with pytest.raises(DeliveryError, match="linux/arm64"):
        deploy(port)
    assert [c[0] for c in port.calls] == ["attach"]


def test_a_node_engine_that_stops_answering_is_noted_and_not_measured() -> None:
    port = swarm()
    port.looks["n2"] = [EMPTY, Unanswered("connection reset")]
    report, _, _ = deploy(port)
    assert not report.nodes[1].measured
    assert report.nodes[1].note == "its engine stopped answering during the update (connection reset): nothing measured"


def test_a_node_the_manager_sees_down_is_said_once_and_reported() -> None:
    port = swarm()
    port.nodes_later = {**port.node_list, "n2": replace(port.node_list["n2"], state="down")}
    report, said, _ = deploy(port)
    assert report.nodes_down == ["node2"] and said.lines.count("node2: the manager sees it down") == 1
    assert report.nodes[1].state == "down"


def test_a_proxy_whose_definition_changed_is_warned_before_the_update() -> None:
    port = swarm()
    port.before["proxy"] = replace(port.before["proxy"], labels={**proxy_labels(), "com.docker.stack.image": "haproxy:2.8", DEFINITION_LABEL: "x"})
    report, said, _ = deploy(port, dry_run=True)
    assert report.proxy_change is not None and "image haproxy:2.8 -> haproxy:3.0" in report.proxy_change
    assert any(line.startswith("manager1: the proxy would be replaced (image haproxy:2.8 -> haproxy:3.0") for line in said.lines)


# -- the steps on their own ---------------------------------------------------------------------------
def test_measure_uses_the_platform_images_the_prediction_chose() -> None:
    port, chosen = swarm(), release()
    asked: list[str] = []

    class Counting:
        tag, image, digest = chosen.tag, chosen.image, chosen.digest

        def variant(self, platform: str, host: str) -> ReleaseVariant:
            asked.append(host)
            return chosen.variant(platform, host)

    found = survey(port, config(), Counting(), Recorded())
    report = SwarmReport("m", STACK, chosen.image, chosen.tag, chosen.digest)
    report.nodes = [rollout.predict(found, render(None)[0], "m", STACK, Counting(), False, Recorded()).nodes[i] for i in (0, 1)]
    port.phase = "deployed"
    measure(port, port.deployed["web"], Counting(), found.nodes, found.variants, found.before, report, T0)
    assert asked == ["node1", "node2"] and all(node.measured for node in report.nodes)


def test_pre_pull_skips_nodes_without_an_engine_or_not_ready() -> None:
    port = swarm(engines={"n1"})
    port.node_list["n1"] = replace(port.node_list["n1"], state="down")
    assert pre_pull(port, release(), port.node_list, "reg", Recorded(), FakeClock()) == {}
    assert port.calls == []


def test_the_stack_file_is_written_for_stack_deploy() -> None:
    port = swarm()
    stack_deploy(port, STACK, *render("1.0.0-a"))
    assert port.calls == [("stack deploy", STACK)]


def test_a_new_service_whose_tasks_keep_failing_ends_the_wait() -> None:
    port = swarm()
    web = service("web", NEW_WEB, replicas=2)
    port.task_list["id-web"] = [running("id-web", "n1", state="failed", error=f"exit {i}", created=T0 + i) for i in range(3)]
    assert converged(port, web, T0) == ("failed", "exit 0")
    port.task_list["id-web"] = port.task_list["id-web"][:2]
    assert converged(port, web, T0) is None


def test_a_replicated_service_with_nothing_to_update_is_unchanged_once_its_tasks_run() -> None:
    port = swarm()
    assert converged(port, replace(port.before["web"], update_state="completed"), T0) == ("unchanged", None)
    assert converged(port, port.before["web"], T0) == ("created", None)


def test_waiting_for_a_service_the_stack_lacks_says_so() -> None:
    port = swarm()
    assert wait_update(port, STACK, "worker", T0, 10, Recorded(), clock=FakeClock()) == ("missing", "the stack has no worker service")


def test_an_older_update_is_not_this_deploys() -> None:
    port = swarm(phase="deployed")
    port.deployed["web"] = replace(port.deployed["web"], update_state="completed", update_started=T0 - 60)
    clock = FakeClock(T0)
    assert wait_update(port, STACK, "web", T0, 30, Recorded(), clock=clock) == ("unchanged", None)
    assert clock.now >= T0 + 3  # it waited for Swarm to start an update before concluding there is none


def test_cron_is_not_moved_when_it_runs_the_release_already() -> None:
    port = swarm(phase="deployed")
    report = SwarmReport("m", STACK, "reg:5000/app", "1.0.1-b", DIGEST, update_state="completed")
    port.deployed["cron"] = replace(port.deployed["cron"], update_state="completed", update_started=T0)
    said = Recorded()
    assert move_cron(port, config(), release(), report, "1.0.1-b", T0, lambda: None, said, FakeClock()) is None
    assert port.calls == [] and report.cron_state == "completed"


def test_the_node_watch_notes_each_node_once() -> None:
    port = swarm(nodes_later={"n1": Node("n1", "node1", "", "unknown", "active")}, phase="deployed")
    report, said = SwarmReport("m", STACK, "i", "v", "d"), Recorded()
    watch = node_watch(port, report, said)
    watch()
    watch()
    assert report.nodes_down == ["node1"] and said.lines == ["node1: the manager sees it unknown"]


# -- rollback and status -------------------------------------------------------------------------------
def rolled_back(port: FakeSwarm) -> FakeSwarm:
    port.before["web"] = replace(port.before["web"], image=NEW_WEB, previous=True, previous_image=OLD_WEB)
    port.before["cron"] = replace(port.before["cron"], previous=True)
    port.deployed = {**port.before, "web": replace(port.before["web"], update_state="rollback_completed", update_started=T0),
                     "cron": replace(port.before["cron"], update_state="rollback_completed", update_started=T0)}
    return port


def test_a_rollback_goes_to_swarms_previous_spec_of_web_and_cron() -> None:
    port, said = rolled_back(swarm()), Recorded()
    report = rollout.run_rollback(port, config(), said, started=T0 - 1, clock=FakeClock())
    assert port.calls == [("rollback", f"{STACK}_web"), ("rollback", f"{STACK}_cron")]
    assert (report.previous, report.version, report.digest, report.image) == ("1.0.1-b", "1.0.0-a", "sha256:" + "0" * 64, "reg:5000/app:1.0.0-a")
    assert report.healthy and report.update_state == "rolled back" and report.cron_state == "rolled back"
    assert said.lines[0] == "manager1: rolling production-control_web back from 1.0.1-b to 1.0.0-a (Swarm's previous spec)"


def test_a_rollback_that_swarm_paused_is_one_line() -> None:
    port = rolled_back(swarm())
    port.deployed["web"] = replace(port.deployed["web"], update_state="rollback_paused", update_message="oops")
    report = rollout.run_rollback(port, config(), Recorded(), started=T0, clock=FakeClock())
    assert not report.healthy and report.error == "the rollback of production-control_web paused (oops): see `invoke status`"


@pytest.mark.parametrize(("services", "expected"), [({}, "no stack production-control on the swarm of manager1: deploy first"),
                                                    (None, "has no previous release to go back to")], ids=["no-stack", "no-previous"])
def test_a_rollback_with_nothing_to_go_back_to_is_one_line(services: dict[str, Service] | None, expected: str) -> None:
    port = swarm()
    if services is not None:
        port.before = services
    else:
        port.before["web"] = replace(port.before["web"], previous=False)
    with pytest.raises(DeliveryError, match=expected):
        rollout.run_rollback(port, config(), Recorded(), started=T0, clock=FakeClock())
    assert port.calls == []


def test_status_counts_running_and_healthy_tasks_per_node() -> None:
    port = swarm(health={"c1": "unhealthy"})
    port.task_list["id-web"] = [running("id-web", "n1", container_id="c1"), running("id-web", "n2"),
                                replace(running("id-web", "n2"), desired_state="shutdown")]
    port.task_list["id-proxy"] = [running("id-proxy", "gone-node", image="haproxy:3.0", state="starting")]
    entry = rollout.stack_status(port, config())
    assert entry["mode"] == "swarm" and entry["host"] == "manager1" and list(entry["services"]) == ["cron", "proxy", "web"]
    web = entry["services"]["web"]
    assert web["per_node"] == {"node1": {"running": 1, "healthy": 0}, "node2": {"running": 1, "healthy": 1}}
    assert web["tag"] == "1.0.0-a" and web["replicas"] == 2 and web["update_state"] == "none"
    assert web["tasks"][0] == {"node": "node1", "state": "running", "health": "unhealthy", "tag": "1.0.1-b", "digest": DIGEST}
    proxy = entry["services"]["proxy"]
    assert proxy["replicas"] == "global" and proxy["tasks"][0]["node"] == "gone-node" and proxy["tasks"][0]["health"] == "starting"
    assert entry["nodes"]["node1"] == {"state": "ready", "availability": "active", "address": "10.0.0.1"}

"""delivery/docker/swarm.py: the typed records parsed from `docker inspect` samples, and the Manager over a fake CLI."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from delivery.config.hosts import parse_host
from delivery.config.settings import load_config
from delivery.docker import swarm
from delivery.docker.swarm import (
    Manager,
    Node,
    NodeImages,
    Unanswered,
    manager_error,
    parse_node,
    parse_service,
    parse_task,
    parse_time,
    pull_event_time,
)
from delivery.errors import DeliveryError

NODE = {
    "ID": "n1abc", "Version": {"Index": 9},
    "Spec": {"Labels": {}, "Role": "manager", "Availability": "active"},
    "Description": {"Hostname": "swarm-node1", "Platform": {"Architecture": "aarch64", "OS": "linux"},
                    "Engine": {"EngineVersion": "27.3.1"}},
    "Status": {"State": "ready", "Addr": "10.0.0.1"},
    "ManagerStatus": {"Leader": True, "Reachability": "reachable", "Addr": "10.0.0.1:2377"},
}

WEB = {
    "ID": "s1web",
    "Spec": {
        "Name": "pc_web", "Labels": {"com.docker.stack.image": "reg/app:1.0.1-b", "com.docker.stack.namespace": "pc"},
        "TaskTemplate": {"ContainerSpec": {"Image": "reg/app:1.0.1-b@sha256:" + "d" * 64,
                                           "Configs": [{"ConfigName": "pc_b"}, {"ConfigName": "pc_a"}]}},
        "Mode": {"Replicated": {"Replicas": 3}},
        "EndpointSpec": {"Ports": [{"PublishedPort": 8443, "TargetPort": 443}, {"PublishedPort": 8000, "TargetPort": 8080}]},
    },
    "PreviousSpec": {"Name": "pc_web", "TaskTemplate": {"ContainerSpec": {"Image": "reg/app:1.0.0-a@sha256:" + "0" * 64}}},
    "UpdateStatus": {"State": "rollback_completed", "StartedAt": "2026-11-29T05:27:01.123456789Z", "Message": "rollback completed"},
}

PROXY = {"ID": "s2proxy", "Spec": {"Name": "pc_proxy", "Mode": {"Global": {}},
                                    "TaskTemplate": {"ContainerSpec": {"Image": "haproxy:3.0"}}}}

TASK = {
    "ID": "t1", "NodeID": "n1abc", "CreatedAt": "2026-11-29T05:27:03.5Z", "DesiredState": "running",
    "Spec": {"ContainerSpec": {"Image": "reg/app:1.0.1-b@sha256:" + "d" * 64}},
    "Status": {"State": "rejected", "Err": "No such image: reg/app:1.0.1-b", "Message": "preparing",
               "ContainerStatus": {"ContainerID": "c1", "ExitCode": 0}},
}


def test_a_node_is_its_name_address_state_and_the_platform_it_pulls() -> None:
    assert parse_node(NODE) == Node("n1abc", "swarm-node1", "10.0.0.1", "ready", "active", platform="linux/arm64")
    bare = {"ID": "n2", "Spec": {}, "Description": {"Hostname": "n2"}, "Status": {"State": "down"}}
    assert parse_node(bare) == Node("n2", "n2", "", "down", "", platform="linux/unknown")


def test_a_service_is_what_the_swarm_steps_read() -> None:
    web = parse_service(WEB)
    assert (web.id, web.name, web.image, web.replicas) == ("s1web", "pc_web", "reg/app:1.0.1-b@sha256:" + "d" * 64, 3)
    assert web.config_names == ("pc_a", "pc_b") and web.published_ports == (8000, 8443)
    assert web.labels["com.docker.stack.image"] == "reg/app:1.0.1-b"
    assert (web.update_state, web.update_message) == ("rollback_completed", "rollback completed")
    assert web.update_started == pytest.approx(1795930021.123456)
    assert web.previous and web.previous_image == "reg/app:1.0.0-a@sha256:" + "0" * 64


def test_a_global_service_that_never_updated() -> None:
    proxy = parse_service(PROXY)
    assert proxy.replicas is None and proxy.update_state == "" and proxy.update_started == 0.0
    assert not proxy.previous and proxy.previous_image is None and proxy.config_names == () and proxy.published_ports == ()


def test_a_task_is_where_it_runs_its_state_error_and_container() -> None:
    task = parse_task(TASK)
    assert (task.node_id, task.state, task.desired_state, task.container_id) == ("n1abc", "rejected", "running", "c1")
    assert (task.error, task.message) == ("No such image: reg/app:1.0.1-b", "preparing")
    assert task.created_at == pytest.approx(1795930023.5)
    pending = parse_task({**TASK, "NodeID": None, "Status": {"State": "pending"}})
    assert pending.node_id is None and pending.error is None and pending.container_id is None


def test_the_pull_event_is_the_first_that_names_the_release() -> None:
    lines = "\n".join(json.dumps(e) for e in [{"id": "haproxy:3.0", "timeNano": 1_000_000_000},
                                               {"id": "reg/app:1.0.1-b", "timeNano": 2_500_000_000},
                                               {"id": "reg/app@sha256:d", "timeNano": 3_000_000_000}])
    assert pull_event_time(lines, ("1.0.1-b", "sha256:d")) == 2.5
    assert pull_event_time(lines, ("2.0.0",)) is None
    assert pull_event_time("", ("x",)) is None


# -- the Manager over a fake docker CLI -------------------------------------------------------------
class FakeCli:
    """`run` of python_on_whales: answers by argv, records each call."""

    def __init__(self, answers: dict[tuple[str, ...], Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: list[str], **_: Any) -> str:
        args = tuple(argv[1:])
        self.calls.append(args)
        answer = self.answers.get(args)
        if answer is None or isinstance(answer, Exception):
            raise answer or DockerException(argv, 1, b"", b"Error: No such object: " + args[-1].encode())
        return answer if isinstance(answer, str) else json.dumps(answer)


class Client:
    docker_cmd = ["docker"]


def manager(monkeypatch: pytest.MonkeyPatch, answers: dict[tuple[str, ...], Any]) -> tuple[Manager, FakeCli]:
    fake = FakeCli(answers)
    monkeypatch.setattr(swarm, "run", fake)
    return Manager(Client(), "manager1"), fake  # type: ignore[arg-type]  # a stand-in DockerClient


def test_services_are_by_short_name(monkeypatch: pytest.MonkeyPatch) -> None:
    port, _ = manager(monkeypatch, {
        ("service", "ls", "-q", "--filter", "label=com.docker.stack.namespace=pc"): "s1web\ns2proxy\n",
        ("inspect", "s1web", "s2proxy"): [WEB, PROXY]})
    assert sorted(port.services("pc")) == ["proxy", "web"]
    assert port.services("pc")["web"].id == "s1web"


def test_tasks_swarm_pruned_meanwhile_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    port, fake = manager(monkeypatch, {
        ("service", "ps", "-q", "--no-trunc", "s1web"): "t1\nt0\n",
        ("inspect", "t1"): [TASK]})  # `inspect t1 t0` fails: t0 is gone
    assert [t.id for t in port.tasks("s1web")] == ["t1"]
    assert ("inspect", "t1", "t0") in fake.calls


def test_an_inspect_that_finds_nothing_says_what_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    port, _ = manager(monkeypatch, {("node", "ls", "-q"): "n9\n"})
    with pytest.raises(DeliveryError, match="^inspecting the swarm's nodes failed: Error: No such object: n9$"):
        port.nodes()


def test_nodes_by_id(monkeypatch: pytest.MonkeyPatch) -> None:
    port, _ = manager(monkeypatch, {("node", "ls", "-q"): "n1abc\n", ("inspect", "n1abc"): [NODE]})
    assert port.nodes() == {"n1abc": parse_node(NODE)}


def test_the_changes_are_the_docker_commands_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    port, fake = manager(monkeypatch, {})
    monkeypatch.setattr(swarm, "cli", lambda docker, *args, what: fake.calls.append(args) or "")
    port.stack_deploy("pc", Path("/tmp/stack.json"))
    port.update_image("pc_cron", "reg/app@sha256:d", what="moving pc_cron")
    port.rollback_service("pc_web")
    assert fake.calls == [(*swarm.STACK_DEPLOY, "-c", "/tmp/stack.json", "pc"),
                          ("service", "update", "--detach", "--image", "reg/app@sha256:d", "pc_cron"),
                          ("service", "rollback", "--detach", "pc_web")]


class Engine:
    """A node engine's client: its images, or an error."""

    def __init__(self, cmd: str, fails: bool = False) -> None:
        self.docker_cmd = ["docker", "--host", cmd]
        self.fails = fails

    @property
    def image(self) -> Engine:
        return self

    def list(self) -> list[Any]:
        if self.fails:
            raise DockerException(["docker", "image", "ls"], 1, b"", b"error during connect: connection reset")

        class Image:
            id, repo_digests = "sha256:i", ["reg/app@sha256:d"]

            class root_fs:  # noqa: N801  # python_on_whales' attribute name
                layers = ["sha256:a"]

        return [Image()]


def test_node_engines_are_matched_by_swarm_node_id(monkeypatch: pytest.MonkeyPatch) -> None:
    infos = {"ssh://n1": {"Swarm": {"NodeID": "n1abc"}, "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]},
             "ssh://n2": {"Swarm": {"NodeID": "elsewhere"}}}
    port, _ = manager(monkeypatch, {})
    monkeypatch.setattr(swarm, "connect", lambda host: Engine(host.url))

    def info(engine: Engine) -> dict[str, Any]:
        if engine.docker_cmd[-1] == "ssh://n3":
            raise DockerException(["docker", "info"], 1, b"", b"Cannot connect to the Docker daemon")
        return infos[engine.docker_cmd[-1]]

    monkeypatch.setattr(swarm, "read_info", info)
    unreachable = port.attach(["ssh://n1", "ssh://n2", "ssh://n3"], {"n1abc": parse_node(NODE)})
    assert unreachable == [f"{parse_host('ssh://n2').label} (not a node of this swarm)",
                           f"{parse_host('ssh://n3').label} (Cannot connect to the Docker daemon)"]
    assert port.has_engine("n1abc") and not port.has_engine("elsewhere")
    assert port.images("n1abc") == NodeImages("containerd", (("sha256:i", ("reg/app@sha256:d",), ("sha256:a",)),))
    assert port.images("n2") is None
    port.engines["n1abc"].docker = Engine("ssh://n1", fails=True)  # type: ignore[assignment]
    assert port.images("n1abc") == Unanswered("error during connect: connection reset")


def test_a_pull_on_a_node_answers_why_it_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    port, fake = manager(monkeypatch, {("--host", "ssh://n1", "pull", "--quiet", "reg/app@sha256:d"): "sha256:d"})
    port.engines["n1"] = swarm.NodeEngine(Engine("ssh://n1"), "overlay2")  # type: ignore[arg-type]
    port.engines["n2"] = swarm.NodeEngine(Engine("ssh://n2"), "overlay2")  # type: ignore[arg-type]
    assert port.pull("n1", "reg/app@sha256:d") is None
    assert port.pull("n2", "reg/app@sha256:d") == "Error: No such object: reg/app@sha256:d"


@pytest.mark.parametrize(("swarm_state", "expected"), [
    ({"LocalNodeState": "active", "ControlAvailable": True}, None),
    ({"LocalNodeState": "active", "ControlAvailable": False}, "is a swarm worker, not a manager"),
    ({}, "is not in a swarm"),
    ({"LocalNodeState": "error", "Error": "raft: no leader"}, "is error \\(raft: no leader\\)"),
], ids=["manager", "worker", "no-swarm", "error"])
def test_open_manager_refuses_an_engine_that_cannot_run_a_stack(monkeypatch: pytest.MonkeyPatch, swarm_state: dict[str, Any],
                                                                 expected: str | None) -> None:
    monkeypatch.setattr(swarm, "connect", lambda host: Client())
    monkeypatch.setattr(swarm, "read_info", lambda docker: {"Swarm": swarm_state})
    if expected is None:
        assert swarm.open_manager(parse_host("local")).label == parse_host("local").label
    else:
        with pytest.raises(DeliveryError, match=expected):
            swarm.open_manager(parse_host("local"))


def test_open_manager_says_an_engine_is_not_reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm, "connect", lambda host: Client())

    def unreachable(docker: Any) -> dict[str, Any]:
        raise DockerException(["docker", "info"], 1, b"", b"Cannot connect to the Docker daemon")

    monkeypatch.setattr(swarm, "read_info", unreachable)
    with pytest.raises(DeliveryError, match="is not reachable: Cannot connect to the Docker daemon \\(check --host\\)$"):
        swarm.open_manager(parse_host("local"))


@pytest.mark.parametrize(
    ("state", "control", "expected"),
    [
        ("inactive", False, "is not in a swarm: initialise one with `docker swarm init`"),
        ("active", False, "is a swarm worker, not a manager: point --host at a manager"),
        ("locked", False, "is locked"),
        ("active", True, None),
    ],
    ids=["not-initialised", "worker", "locked", "manager"],
)
def test_manager_errors(state: str, control: bool, expected: str | None) -> None:
    problem = manager_error("node1", state, control)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem and "\n" not in problem


def test_docker_times_with_nanoseconds() -> None:
    assert parse_time("2026-11-29T05:27:01.123456789Z") == pytest.approx(1795930021.123456)


@pytest.mark.parametrize("registry_user", [None, "deploy"])
def test_stack_deploy_always_forwards_the_registry_login(monkeypatch: pytest.MonkeyPatch, registry_user: str | None) -> None:
    from pathlib import Path

    from delivery.docker import swarm as swarm_cli

    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(swarm_cli, "cli", lambda docker, *args, what: calls.append(args) or "")
    swarm_cli.Manager(None, "local").stack_deploy(load_config({"registry_user": registry_user}).compose_project, Path("/tmp/stack.json"))
    assert "--with-registry-auth" in calls[0] and calls[0][:2] == ("stack", "deploy")
    # An image named as before keeps the digest it runs: a moved proxy tag does not replace the proxy.
    assert calls[0][calls[0].index("--resolve-image") + 1] == "changed"

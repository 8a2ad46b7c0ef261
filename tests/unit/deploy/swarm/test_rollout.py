"""The swarm deploy, rollback and status over a fake port (conftest.py): each failure path, no engine. Each step on
its own: test_plan.py, test_prepull.py, test_update.py, test_measure.py, test_outcome.py."""
from __future__ import annotations

from dataclasses import replace

import pytest

from delivery.config.settings import DeployConfig
from delivery.deploy.swarm import rollout
from delivery.deploy.swarm.measure import SwarmReport
from delivery.deploy.swarm.stack import DEFINITION_LABEL
from delivery.docker.swarm import Service, Unanswered
from delivery.errors import DeliveryError
from delivery.release.release import Release
from delivery.reporting import Recorded
from tests.unit.deploy.swarm.conftest import (
    DIGEST,
    EMPTY,
    NEW_WEB,
    OLD_WEB,
    STACK,
    T0,
    FakeClock,
    FakeSwarm,
    config,
    proxy_labels,
    release,
    render,
    running,
    swarm,
)


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

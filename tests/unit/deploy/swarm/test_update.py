"""Updating a swarm stack: waiting for a service's update, and a global service Swarm does not update."""

from dataclasses import replace

import pytest

from delivery.deploy.swarm.measure import SwarmReport
from delivery.deploy.swarm.update import converged, move_cron, node_watch, stack_deploy, wait_update
from delivery.docker.swarm import Node, parse_service
from delivery.reporting import Recorded
from tests.unit.deploy.swarm.conftest import DIGEST, NEW_WEB, STACK, T0, FakeClock, config, release, render, running, service, swarm


@pytest.mark.parametrize(("previous_spec", "expected"), [({"Name": "pc_proxy"}, "unchanged"), (None, "created")],
                         ids=["existing", "new"])
def test_a_global_service_swarm_does_not_update_is_unchanged_or_created(previous_spec: dict | None, expected: str) -> None:
    from delivery.deploy.swarm.update import wait_update
    from delivery.reporting import Silent

    proxy = parse_service({"ID": "p1", "Spec": {"Name": "pc_proxy", "Mode": {"Global": {}}, "TaskTemplate": {"ContainerSpec": {"Image": "haproxy"}}},
                           "PreviousSpec": previous_spec})

    class Port:
        def services(self, stack: str) -> dict:
            return {"proxy": proxy}

    assert wait_update(Port(), "pc", "proxy", started=0.0, timeout=5, reporter=Silent(), clock=FakeClock(10.0)) == (expected, None)


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

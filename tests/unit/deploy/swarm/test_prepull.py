"""Pulling the release on each node before the update: only nodes that are ready and have an engine listed."""

from dataclasses import replace

from delivery.deploy.swarm.prepull import pre_pull
from delivery.reporting import Recorded
from tests.unit.deploy.swarm.conftest import FakeClock, release, swarm


def test_pre_pull_skips_nodes_without_an_engine_or_not_ready() -> None:
    port = swarm(engines={"n1"})
    port.node_list["n1"] = replace(port.node_list["n1"], state="down")
    assert pre_pull(port, release(), port.node_list, "reg", Recorded(), FakeClock()) == {}
    assert port.calls == []

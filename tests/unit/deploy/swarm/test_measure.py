"""Measuring a swarm pull: the layers that arrived on a node, and a node report that measured nothing yet."""

from delivery.deploy.swarm import rollout
from delivery.deploy.swarm.measure import NodeReport, SwarmReport, measure, measured_pull
from delivery.deploy.swarm.plan import survey
from delivery.deploy.swarm.port import ReleaseVariant
from delivery.registry.client import Blob, Manifest
from delivery.release.pullreport import host_layers
from delivery.reporting import Recorded
from tests.unit.deploy.swarm.conftest import STACK, T0, config, release, render, swarm


def test_a_measured_pull_is_the_layers_that_arrived() -> None:
    blobs = tuple(Blob(f"sha256:{c * 64}", size) for c, size in (("1", 100), ("2", 20)))
    manifest = Manifest("sha256:" + "m" * 64, 500, Blob("sha256:" + "c" * 64, 7), blobs)
    diff_ids = ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
    before = host_layers("overlay2", [("old", [], [diff_ids[0]])])
    after = host_layers("overlay2", [("old", [], [diff_ids[0]]), ("sha256:" + "c" * 64, [], list(diff_ids))])
    assert measured_pull(manifest, diff_ids, before, after) == (1, 20 + 7)
    assert measured_pull(manifest, diff_ids, after, after) == (0, 0)


def test_node_report_defaults_say_nothing_was_measured() -> None:
    node = NodeReport("n1", "10.0.0.1", "ready")
    assert not node.measured and node.measured_bytes is None


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

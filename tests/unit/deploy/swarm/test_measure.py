"""Measuring a swarm pull: the layers that arrived on a node, and a node report that measured nothing yet."""

from delivery.deploy.swarm.measure import NodeReport, measured_pull
from delivery.registry.client import Blob, Manifest
from delivery.release.pullreport import host_layers


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

"""The deployers' typed reports: what `--json` prints of a dry run's prediction and of a host's or a swarm's status."""

from delivery.deploy.reports import HostStatus, HostStatusEntry, PullPrediction, SwarmStatus, SwarmStatusEntry
from delivery.release.pullreport import PullPlan

PLAN = PullPlan("localhost:5000/production-control:1.0.0-abcdef123456", "sha256:abc", "overlay2", total_layers=9, pulled_layers=1,
                total_bytes=60_000_000, pulled_bytes=4096, pulled_digests=("sha256:" + "1" * 64,))


def test_a_prediction_is_the_hosts_predicted_pull_marked_as_a_dry_run() -> None:
    assert PullPrediction("deploy@prod-1", "linux/arm64", PLAN).as_dict() == {
        "host": "deploy@prod-1", "platform": "linux/arm64", "image": PLAN.image, "digest": "sha256:abc", "store": "overlay2",
        "predicted_layers": 1, "total_layers": 9, "predicted_bytes": 4096, "total_bytes": 60_000_000,
        "predicted_digests": ["sha256:" + "1" * 64], "dry_run": True,
    }


def test_a_host_status_is_its_entry_and_a_copy_of_it() -> None:
    entry: HostStatusEntry = {"host": "plant-a", "live_slot": "green", "lock": None, "releases": {"count": 2, "keep_releases": 5, "bytes": 10}}
    shown = HostStatus(entry).as_dict()
    assert shown == entry
    shown["host"] = "elsewhere"
    assert entry["host"] == "plant-a"


def test_a_swarm_status_is_its_entry_and_a_copy_of_it() -> None:
    entry: SwarmStatusEntry = {"mode": "swarm", "host": "manager1", "stack": "pc", "nodes": {}, "services": {}}
    shown = SwarmStatus(entry).as_dict()
    assert shown == entry and list(shown) == ["mode", "host", "stack", "nodes", "services"]
    shown["services"] = {"web": {}}
    assert entry["services"] == {}

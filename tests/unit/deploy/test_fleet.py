"""Several hosts: a failure on host N keeps the reports of hosts 1..N-1, which already run the release."""

import contextlib
from types import SimpleNamespace

import pytest

from delivery.config.hosts import parse_host
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.fleet import each_host
from delivery.errors import DeliveryError, DeployFailed

HOSTS = [parse_host(f"ssh://deploy@prod-{n}") for n in (1, 2, 3)]


@contextlib.contextmanager
def opened(host):
    """No engines: a target is its host."""
    yield SimpleNamespace(host=host)


def report(target, healthy: bool = True) -> DeployReport:
    return DeployReport(host=target.host.label, image="r/production-control:1.0.1-aaaaaaaaaaaa",
                        version="1.0.1-aaaaaaaaaaaa", digest="sha256:1", healthy=healthy,
                        error=None if healthy else "1.0.1-aaaaaaaaaaaa failed on deploy@prod-2: its healthcheck failed")


def test_an_unhealthy_host_stops_the_deploy_and_keeps_every_report() -> None:
    visited = []

    def action(target):
        visited.append(target.host.label)
        return report(target, healthy=target.host.label != "deploy@prod-2")

    with pytest.raises(DeployFailed) as failed:
        each_host(HOSTS, action, "deploy", opened)

    assert visited == ["deploy@prod-1", "deploy@prod-2"]
    assert [r["host"] for r in failed.value.reports] == ["deploy@prod-1", "deploy@prod-2"]
    assert [r["healthy"] for r in failed.value.reports] == [True, False]
    assert str(failed.value).endswith("(hosts before it: deploy@prod-1 runs 1.0.1-aaaaaaaaaaaa)")


def test_an_error_on_a_later_host_keeps_the_reports_of_the_hosts_before_it() -> None:
    def action(target):
        if target.host.label == "deploy@prod-3":
            raise DeliveryError("the Docker engine at deploy@prod-3 is not reachable")
        return report(target)

    with pytest.raises(DeployFailed) as failed:
        each_host(HOSTS, action, "deploy", opened)

    assert [r["host"] for r in failed.value.reports] == ["deploy@prod-1", "deploy@prod-2", "deploy@prod-3"]
    assert failed.value.reports[-1] == {"host": "deploy@prod-3", "error": "the Docker engine at deploy@prod-3 is not reachable"}
    assert "deploy on deploy@prod-3 failed" in str(failed.value)
    assert str(failed.value).endswith("(hosts before it: deploy@prod-1 runs 1.0.1-aaaaaaaaaaaa, deploy@prod-2 runs 1.0.1-aaaaaaaaaaaa)")


def test_an_error_on_the_first_host_is_the_plain_error() -> None:
    def action(target):
        raise DeliveryError("another deploy to deploy@prod-1 is running")

    with pytest.raises(DeliveryError) as failed:
        each_host(HOSTS, action, "deploy", opened)

    assert not isinstance(failed.value, DeployFailed)
    assert str(failed.value) == "another deploy to deploy@prod-1 is running"


def test_reports_without_a_version_are_done_and_every_host_is_visited() -> None:
    class Done:
        def __init__(self, host: str) -> None:
            self.host = host

        def as_dict(self) -> dict[str, str]:
            return {"host": self.host}

    assert [r.host for r in each_host(HOSTS, lambda target: Done(target.host.label), "prune", opened)] == [h.label for h in HOSTS]

    def action(target):
        if target.host.label == "deploy@prod-2":
            raise DeliveryError("boom")
        return Done(target.host.label)

    with pytest.raises(DeployFailed, match=r"prune on deploy@prod-2 failed: boom \(hosts before it: deploy@prod-1 done\)"):
        each_host(HOSTS, action, "prune", opened)

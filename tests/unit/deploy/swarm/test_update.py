"""Updating a swarm stack: waiting for a service's update, and a global service Swarm does not update."""

import pytest

from delivery.docker.swarm import parse_service


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

    class Clock:
        now = 10.0

        def time(self) -> float:
            return self.now

        def monotonic(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.now += seconds

    assert wait_update(Port(), "pc", "proxy", started=0.0, timeout=5, reporter=Silent(), clock=Clock()) == (expected, None)

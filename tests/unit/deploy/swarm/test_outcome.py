"""How a swarm deploy ends, in one line: a paused or rolled-back update, a node that cannot pull, a proxy update
that did not complete, a first deploy with nothing to roll back to."""

import pytest

from delivery.config.settings import load_config
from delivery.deploy.swarm.measure import SwarmReport
from delivery.deploy.swarm.outcome import outcome_error


def report(**changes) -> SwarmReport:
    base = SwarmReport(manager="m", stack="pc", image="r/app", version="1.0.1-b", digest="sha256:x", previous="1.0.0-a")
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_a_paused_update_says_how_to_resume_or_roll_back() -> None:
    line = outcome_error(report(update_state="paused", update_message="update paused due to failure"), None, load_config({}))
    assert "docker service update --detach=false pc_web" in line and "invoke rollback" in line


def test_a_rolled_back_update_names_the_failure_and_what_serves() -> None:
    failed = [{"service": "pc_web", "node": "n2", "state": "failed", "error": "task: non-zero exit (1)", "image": "1.0.1-b"}]
    line = outcome_error(report(update_state="rolled back", failed_tasks=failed), None, load_config({}))
    assert "non-zero exit (1)" in line and "rolled pc_web back" in line and "1.0.0-a is serving" in line


def test_a_node_that_cannot_pull_is_named() -> None:
    failed = [{"service": "pc_web", "node": "swarm-node3", "state": "rejected",
               "error": "No such image: r/app:1.0.1-b", "image": "1.0.1-b"}]
    line = outcome_error(report(update_state="rolled back", failed_tasks=failed), None, load_config({"registry": "reg:5000"}))
    assert line.startswith("swarm-node3 cannot pull from reg:5000") and "certs.d" in line


def test_a_first_deploy_whose_tasks_keep_failing_says_there_is_nothing_to_roll_back_to() -> None:
    failed = [{"service": "pc_web", "node": "n1", "state": "failed", "error": "task: non-zero exit (1)", "image": "1.0.1-b"}]
    line = outcome_error(report(update_state="failed", update_message="task: non-zero exit (1)", previous=None, failed_tasks=failed),
                         None, load_config({}))
    assert "no previous release to roll back to" in line and "docker stack rm pc" in line


@pytest.mark.parametrize(
    ("state", "expected"),
    [("rolled back", "Swarm rolled pc_proxy back, the previous one serves on every node"),
     ("paused", "the update of pc_proxy paused (update paused due to failure): a node may have no proxy"),
     ("timed out", "the update of pc_proxy timed out")],
    ids=["rolled-back", "paused", "timed-out"],
)
def test_a_proxy_update_that_did_not_complete_is_one_line(state: str, expected: str) -> None:
    failed = report(update_state="completed", cron_state="completed", proxy_state=state,
                    proxy_message="update paused due to failure" if state == "paused" else None)
    line = outcome_error(failed, None, load_config({}))
    assert expected in line and "\n" not in line

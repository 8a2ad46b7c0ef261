"""The compose handover, step by step, over a fake docker port and a fake proxy: every step, every failure path,
and the restores that otherwise only the Docker test bed reaches (crash before the switch, a failed watch
window, an exception in `up`, an engine error, an interrupt during a step). The fakes: conftest.py."""

from __future__ import annotations

import pytest
from python_on_whales.exceptions import DockerException

from delivery.deploy.compose import steps
from delivery.deploy.compose.health import ContainerState
from delivery.deploy.compose.watch import NO_TRAFFIC
from delivery.errors import CronFailed, DeliveryError, HandoverFailed, Interrupted
from tests.unit.deploy.compose.conftest import NEW, OLD, OTHER, PIN, RELEASE, _handover, _site


# -- the whole handover ------------------------------------------------------------------------------------
def test_a_handover_holds_starts_checks_switches_watches_records_drains_and_replaces_cron() -> None:
    h, port, said = _handover()
    container = steps.run(h)
    assert container.id == "web-green-id"
    assert port.events == [
        "ensure proxy", "proxy set server web/green state drain",
        f"up web-green {PIN}", "wait healthy web-green-id",
        "proxy set weight web/green 256; set server web/green state ready; set weight web/blue 1",
        "record deploy " + NEW, "proxy drain blue", "remove web-blue",
        f"up cron {PIN}", "wait healthy cron-id",
    ]
    report = h.report
    assert (report.slot, report.web_live, report.cron, report.drain_seconds) == ("green", True, f"runs {NEW}", 1.25)
    assert report.seconds_to_healthy is not None and report.switch_seconds is not None
    assert report.monitor is not None and report.monitor["switched_back"] is False and report.monitor["errors"] == 0
    assert said.lines[0] == f"h1: starting {NEW} in slot green (live: blue, {OLD})"
    assert f"h1: proxy switched to green ({NEW}) in {report.switch_seconds:.2f}s" in said.lines
    assert "h1: watching green for 3s (old release kept behind it)" in said.lines
    assert "h1: drained blue in 1.2s" in said.lines and said.lines[-1] == f"h1: replacing cron ({OLD} -> {NEW})"


def test_a_first_deploy_has_nothing_to_hold_watch_or_drain() -> None:
    h, port, _ = _handover(_site(None))
    steps.run(h)
    assert port.events == ["ensure proxy", f"up web-blue {PIN}", "wait healthy web-blue-id",
                           "proxy set weight web/blue 256; set server web/blue state ready", "record deploy " + NEW,
                           f"up cron {PIN}", "wait healthy cron-id"]
    assert h.report.monitor is None and h.report.drain_seconds is None


def test_no_watch_window_when_monitor_is_zero() -> None:
    h, _, said = _handover(monitor=0)
    steps.run(h)
    assert h.report.monitor is None and not any("watching" in line for line in said.lines)


def test_the_single_container_layout_is_swapped_for_the_proxy_once_the_new_release_is_healthy() -> None:
    h, port, said = _handover(_site(None, legacy=True))
    steps.run(h)
    assert port.events[:5] == [f"up web-blue {PIN}", "wait healthy web-blue-id", f"stop {OLD}-id", "ensure proxy",
                               "proxy set weight web/blue 256; set server web/blue state ready"]
    assert f"remove {OLD}-id" in port.events
    assert "h1: replacing the single-container layout (app) with the proxy" in said.lines


def test_a_slot_left_by_an_interrupted_deploy_is_held_then_removed() -> None:
    h, port, said = _handover(_site("blue", leftover=True))
    steps.take_out_free_slot(h)
    assert port.events == ["proxy set server web/green state drain", "remove web-green"]
    assert said.lines == ["h1: removing web-green, left by an interrupted deploy (held out of rotation first)"]


# -- failures before the switch: what served keeps serving -------------------------------------------------
def test_a_release_that_never_gets_healthy_is_removed_and_the_old_slot_keeps_serving() -> None:
    h, port, said = _handover(unhealthy={"web-green": "it exited with code 3"})
    with pytest.raises(HandoverFailed, match=f"^{NEW} failed on h1: it exited with code 3$"):
        steps.run(h)
    assert not any("set weight web/green" in event for event in port.events), "a release that is not healthy got traffic"
    assert port.events[-3:] == ["wait for engine", "proxy set weight web/blue 256; set server web/blue state ready; "
                                "set server web/green state drain", "remove web-green"]
    assert said.lines[-4:] == [f"h1: {NEW} is not healthy (it exited with code 3); last log lines:",
                               "  | Traceback (most recent call last):", "  | ImportError: no module named x",
                               "h1: restored: blue is serving"]
    assert h.report.web_live is False and h.report.cron is None


@pytest.mark.parametrize(
    ("runs", "why"),
    [
        pytest.param(([OTHER], "linux/amd64"), f"it runs image digest {OTHER}, not {RELEASE}", id="another-image"),
        pytest.param(([RELEASE], "linux/arm64"), "it runs the linux/arm64 image, not the host's linux/amd64", id="another-platform"),
    ],
)
def test_a_container_of_another_image_or_platform_never_gets_traffic(runs: tuple[list[str], str], why: str) -> None:
    h, port, _ = _handover(runs=runs)
    with pytest.raises(HandoverFailed, match=why):
        steps.run(h)
    assert not h.switched and "remove web-green" in port.events


def test_a_slot_the_proxy_cannot_check_is_not_switched_to() -> None:
    h, port, said = _handover(proxy={"failing": {"green"}})
    with pytest.raises(HandoverFailed, match="healthy in its container, but the proxy's check of slot green does not pass"):
        steps.run(h)
    assert not h.switched and said.lines[-1] == "h1: restored: blue is serving"


def test_a_failure_in_up_restores_and_raises_it_as_it_is() -> None:
    failure = DeliveryError("starting web-green on h1 failed: no space left on device")
    h, port, said = _handover(fail={f"up web-green {PIN}": failure})
    with pytest.raises(DeliveryError) as raised:
        steps.run(h)
    assert raised.value is failure
    assert "remove web-green" in port.events and said.lines[-1] == "h1: restored: blue is serving"


def test_a_docker_failure_in_a_step_becomes_a_handover_failure_after_restoring() -> None:
    engine = DockerException(["docker", "compose", "up"], 1, b"", b"Error: the engine went away\n")
    h, port, said = _handover(fail={"wait healthy web-green-id": engine})
    with pytest.raises(HandoverFailed, match=f"^{NEW} failed on h1: Error: the engine went away$"):
        steps.run(h)
    assert said.lines[-1] == "h1: restored: blue is serving"


def test_an_interrupt_during_a_step_restores_then_goes_on() -> None:
    h, port, said = _handover(fail={"wait healthy web-green-id": Interrupted(15)})
    with pytest.raises(Interrupted):
        steps.run(h)
    assert "wait for engine" in port.events and "remove web-green" in port.events
    assert said.lines[-1] == "h1: restored: blue is serving"


def test_a_first_deploy_that_fails_removes_the_new_slot_and_says_nothing_served() -> None:
    h, port, said = _handover(_site(None), unhealthy={"web-blue": "its healthcheck failed"})
    with pytest.raises(HandoverFailed):
        steps.run(h)
    assert port.events[-2:] == ["wait for engine", "remove web-blue"]
    assert said.lines[-1] == "h1: restored: nothing was serving before"


def test_a_failed_single_container_deploy_starts_the_old_container_again() -> None:
    h, port, said = _handover(_site(None, legacy=True), unhealthy={"web-blue": "its healthcheck failed"})
    with pytest.raises(HandoverFailed):
        steps.run(h)
    assert port.events[-3:] == ["wait for engine", f"start {OLD}-id", "remove web-blue"]
    assert said.lines[-1] == f"h1: restored: {OLD} is serving"


# -- failures in the watch window: switched back ----------------------------------------------------------
def test_too_many_errors_in_the_watch_window_switch_back_and_drain_the_new_slot() -> None:
    h, port, said = _handover(proxy={"errors_per_read": 5})
    with pytest.raises(HandoverFailed, match=r"requests failed \(deploy.max_error_rate 0.02\) in the 3s watch window; switched back$"):
        steps.run(h)
    assert h.switched and h.report.monitor is not None and h.report.monitor["switched_back"] is True
    assert port.events[-3:] == ["proxy set weight web/blue 256; set server web/blue state ready; set server web/green state drain",
                                "proxy drain green", "remove web-green"]
    assert "record deploy " + NEW not in port.events and h.report.web_live is False
    assert said.lines[-1] == "h1: restored: blue is serving"


def test_a_new_container_that_restarts_in_the_watch_window_is_switched_back() -> None:
    h, _, _ = _handover(states=[ContainerState("running", 0), ContainerState("running", 1)])
    with pytest.raises(HandoverFailed, match=r"the new container restarted \(1 times\) in the 3s watch window; switched back"):
        steps.run(h)


def test_a_quiet_watch_window_passes_on_the_proxy_checks() -> None:
    h, _, _ = _handover(proxy={"per_read": 0})
    steps.run(h)
    assert h.report.monitor is not None and h.report.monitor["note"] == NO_TRAFFIC


# -- restore ----------------------------------------------------------------------------------------------
def test_restore_starts_a_stopped_old_slot_again() -> None:
    h, port, said = _handover(old_running=False)
    steps.restore(h)
    assert port.events[:2] == ["wait for engine", f"start {OLD}-id"] and said.lines == ["h1: restored: blue is serving"]


def test_restore_keeps_the_new_slot_when_the_old_one_never_passes() -> None:
    h, port, said = _handover(proxy={"failing": {"blue", "green"}})
    steps.restore(h)
    assert port.proxy.waited == [30.0], "restore does not give the old slot deploy.health_timeout"
    assert "remove web-green" not in port.events
    assert said.lines == ["h1: blue did not pass the proxy's check within deploy.health_timeout (30s); keeping green",
                          "h1: restore incomplete: neither slot is healthy; green stays in rotation"]


def test_restore_removes_the_new_slot_even_when_the_proxy_refuses_the_reset() -> None:
    h, port, said = _handover(proxy={"refuse": True})
    steps.restore(h)
    assert port.events[-1] == "remove web-green"
    assert said.lines == ["h1: could not reset the proxy (the proxy refused it); blue is healthy, removing the new slot",
                          "h1: restored: blue is serving"]


def test_restore_reports_a_new_slot_it_could_not_remove() -> None:
    h, _, said = _handover(fail={"remove web-green": DeliveryError("removing web-green on h1 failed: busy")})
    steps.restore(h)
    assert said.lines == ["h1: restore incomplete: blue is not healthy; green stays in rotation"]


# -- after the switch is final: nothing switches back ------------------------------------------------------
def test_a_failure_to_record_is_a_warning() -> None:
    h, _, said = _handover(fail={"record deploy " + NEW: DeliveryError("recording the deploy history failed: disk full")})
    steps.run(h)
    assert f"h1: warning: {NEW} serves, but recording the deploy history failed: disk full; `invoke rollback` does not know it serves" \
        in said.lines
    assert h.report.web_live


def test_a_failure_to_remove_the_old_slot_is_a_warning_and_cron_is_still_replaced() -> None:
    h, port, said = _handover(fail={"remove web-blue": DeliveryError("removing web-blue on h1 failed: busy")})
    steps.run(h)
    assert f"h1: warning: {NEW} serves, but removing the old web-blue failed (removing web-blue on h1 failed: busy); " \
        "the next deploy removes it" in said.lines
    assert h.report.cron == f"runs {NEW}"


def test_proxy_restarts_are_counted_and_said() -> None:
    h, _, said = _handover(proxy={"restarts": 1})
    steps.run(h)
    assert h.report.proxy_restarts == 1
    assert "h1: the proxy restarted during the deploy (its restart policy brought it back); its state was applied again" in said.lines


def test_a_cron_that_fails_keeps_the_web_switch_and_puts_the_old_cron_back() -> None:
    h, port, _ = _handover(unhealthy={"cron": "its healthcheck failed"})
    with pytest.raises(CronFailed) as raised:
        steps.run(h)
    assert str(raised.value) == (f"cron of {NEW} failed on h1: its healthcheck failed; the web app runs {NEW}, "
                                 f"cron was put back on {OLD}")
    assert port.events[-3:] == [f"up cron {PIN}", "wait healthy cron-id", f"up cron {OLD}"]
    assert h.report.web_live and h.report.cron == f"failed: {raised.value}"
    assert "remove web-blue" in port.events, "a cron failure undid the web switch"


def test_a_cron_with_nothing_before_it_says_so() -> None:
    h, _, _ = _handover(_site(None), unhealthy={"cron": "its healthcheck failed"})
    with pytest.raises(CronFailed, match="no other cron was running before$"):
        steps.run(h)

"""The watch window fails closed, and restore keeps the only serving slot (issue items 2 and 5), with fakes."""

from typing import Any

import pytest

from delivery.deploy.compose import watch as watching
from delivery.deploy.compose.health import ContainerState, container_problem
from delivery.deploy.compose.proxy import ServerStats, window_failure
from delivery.deploy.compose.watch import restore_outcome, watch
from delivery.errors import DeliveryError
from delivery.reporting import Recorded

RUNNING = ContainerState("running", 0)


def _stats(requests: int, errors: int = 0, check: str = "L7OK") -> ServerStats:
    return ServerStats("green", "UP", check, 256, 0, requests, errors, 0)


class FakeProxy:
    """Answers `server` from a script: a ServerStats, or an exception to raise."""

    def __init__(self, answers: list[Any], passing: bool = True):
        self.answers, self.passing, self.waited = list(answers), passing, 0

    def server(self, slot: str) -> ServerStats:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def wait_passing(self, slot: str, timeout: float) -> bool:
        self.waited += 1
        return self.passing


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _watch(proxy: FakeProxy, states: list[ContainerState] | None = None, min_requests: int = 0, said: Recorded | None = None):
    clock = Clock()
    queue = list(states or [RUNNING])
    state = lambda: queue.pop(0) if len(queue) > 1 else queue[0]  # noqa: E731
    return watch(proxy, "green", 3.0, said if said is not None else Recorded(), "h", state=state,
                 min_requests=min_requests, sleep=clock.sleep, clock=clock)


def test_a_window_with_traffic_and_no_errors_passes() -> None:
    observed = _watch(FakeProxy([_stats(10), _stats(50), _stats(90), _stats(130)]))
    assert (observed.requests, observed.problem, observed.note) == (120, None, None)
    assert window_failure(observed, 0.02) is None


def test_stats_that_cannot_be_read_fail_the_window() -> None:
    # The crash-looping release: commands go through its container, every read fails.
    observed = _watch(FakeProxy([DeliveryError("the proxy's runtime API did not answer")]))
    assert observed.problem == "stats unreadable: 4 of 4 reads failed (the proxy's runtime API did not answer)"
    assert window_failure(observed, 0.02) == observed.problem


def test_a_failed_last_read_fails_the_window_but_a_failed_middle_one_is_only_counted() -> None:
    boom = DeliveryError("no answer")
    assert _watch(FakeProxy([_stats(0), _stats(5), _stats(9), boom])).problem.startswith("stats unreadable: 1 of 4")
    middle = _watch(FakeProxy([_stats(0), boom, _stats(9), _stats(20)]))
    assert (middle.problem, middle.failed_reads, middle.requests) == (None, 1, 20)


@pytest.mark.parametrize(
    ("now", "why"),
    [
        pytest.param(ContainerState("exited", 0, 3), "the new container is exited (exit code 3)", id="exited"),
        pytest.param(ContainerState("restarting", 1, 1), "the new container is restarting (exit code 1)", id="restarting"),
        pytest.param(ContainerState("running", 2), "the new container restarted (2 times)", id="restarted"),
    ],
)
def test_a_new_container_that_exits_or_restarts_fails_the_window(now: ContainerState, why: str) -> None:
    said = Recorded()
    observed = _watch(FakeProxy([_stats(0), _stats(40)]), states=[RUNNING, RUNNING, now], said=said)
    assert observed.problem == why and container_problem(RUNNING, now) == why
    assert said.lines[-1].endswith(why)


def test_a_container_that_cannot_be_inspected_fails_the_window() -> None:
    def state() -> ContainerState:
        if clock.now:
            raise DeliveryError("the engine stopped answering")
        return RUNNING

    clock = Clock()
    observed = watch(FakeProxy([_stats(0)]), "green", 2.0, Recorded(), "h", state=state, sleep=clock.sleep, clock=clock)
    assert observed.problem == "the new container cannot be inspected (the engine stopped answering)"


def test_a_quiet_window_passes_on_health_checks_and_says_so() -> None:
    said = Recorded()
    proxy = FakeProxy([_stats(7)])
    observed = _watch(proxy, said=said)
    assert (observed.requests, observed.problem, observed.note, proxy.waited) == (0, None, watching.NO_TRAFFIC, 1)
    assert window_failure(observed, 0.02) is None and said.lines[-1].endswith(watching.NO_TRAFFIC)


def test_a_quiet_window_whose_health_check_fails_fails() -> None:
    observed = _watch(FakeProxy([_stats(7)], passing=False))
    assert observed.problem == "no traffic in the watch window, and the proxy's health check of green does not pass"


def test_a_quiet_window_under_a_minimum_fails() -> None:
    proxy = FakeProxy([_stats(7)])
    observed = _watch(proxy, min_requests=5)
    assert proxy.waited == 0 and observed.note is None
    assert window_failure(observed, 0.02, 5) == "only 0 requests reached it (deploy.watch_min_requests 5)"


# -- restore ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("servers", "removed", "line"),
    [
        pytest.param({"blue": _stats(0), "green": _stats(0)}, True, "restored: blue is serving", id="restored"),
        pytest.param({"blue": _stats(0, check="L4CON")}, True,
                     "restore incomplete: green was removed, but the proxy's check of blue does not pass", id="old-down-after"),
        pytest.param({"blue": _stats(0, check="L4CON"), "green": _stats(0)}, False,
                     "restore incomplete: blue is not healthy; green stays in rotation", id="new-kept"),
        pytest.param(None, False, "restore incomplete: neither slot is healthy; green stays in rotation", id="nothing-answers"),
    ],
)
def test_restore_reports_what_it_reads_back(servers: dict | None, removed: bool, line: str) -> None:
    assert restore_outcome(servers, "blue", "green", removed) == line


# The restore itself (health_timeout, the new slot kept or removed): tests/unit/deploy/compose/test_steps.py.

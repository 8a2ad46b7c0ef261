"""The proxy's runtime API: commands sent, answers parsed, the watch window's arithmetic."""

from pathlib import Path

import pytest
import yaml

from delivery.deploy.compose import proxy
from delivery.deploy.compose.proxy import (
    ServerStats,
    Window,
    check_answer,
    drain_command,
    hold_command,
    parse_stats,
    switch_command,
    too_many_errors,
    window,
    window_failure,
)
from delivery.errors import DeliveryError
from delivery.hosts.services import other, service_of

ROOT = Path(__file__).resolve().parents[4]

# A real `show stat web 4 -1` answer of HAProxy 2.6 (columns cut after hrsp_other are kept
# as HAProxy prints them: the parser must find its columns by name).
HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,"
    "status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,"
    "type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,"
    "hrsp_4xx,hrsp_5xx,hrsp_other\n"
)
BLUE = "web,blue,0,0,3,9,,27,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,5,0,,1,3,1,,27,,2,0,,3,L7OK,200,1,0,27,0,0,0,0\n"
GREEN = "web,green,0,0,1,4,,20,0,0,,0,,0,0,20,20,UP,256,1,0,0,0,5,0,,1,3,2,,20,,2,0,,3,L7OK,200,1,0,0,0,0,2,0\n"


def test_parse_stats_reads_each_slot_by_column_name() -> None:
    servers = parse_stats(HEADER + BLUE + GREEN + "\n")

    assert servers == {
        "blue": ServerStats("blue", "UP", "L7OK", 1, 3, 27, 0, 0),
        "green": ServerStats("green", "UP", "L7OK", 256, 1, 20, 2, 20),
    }
    assert servers["green"].errors == 22
    assert servers["blue"].check_passes


def test_parse_stats_skips_frontend_backend_and_other_proxies() -> None:
    other_rows = "http,FRONTEND,,,0,0,,0,0,0,0,0,0,,,,,OPEN\nweb,BACKEND,0,0,0,0,,0,0,0,0,0,,0,0,0,0,UP\nstats,s1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP\n"

    assert parse_stats(HEADER + other_rows + BLUE).keys() == {"blue"}


@pytest.mark.parametrize("answer", ["Unknown command.\n", "", "Permission denied\n"])
def test_parse_stats_refuses_what_is_not_statistics(answer: str) -> None:
    with pytest.raises(DeliveryError, match="instead of statistics"):
        parse_stats(answer)


def test_a_slot_without_container_does_not_pass_the_check() -> None:
    row = "web,green,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT (resolution),256,1,0,0,0,5,0,,1,3,2,,0,,2,0,,0,,,,0,0,0,0,0,0\n"

    green = parse_stats(HEADER + row)["green"]

    assert green.status == "MAINT (resolution)"
    assert not green.check_passes


def test_commands() -> None:
    assert hold_command("green") == "set server web/green state drain"
    assert drain_command("blue") == "set server web/blue state drain"
    assert switch_command("green", "blue") == (
        "set weight web/green 256; set server web/green state ready; set weight web/blue 1"
    )
    assert switch_command("blue", None) == "set weight web/blue 256; set server web/blue state ready"
    assert [other(None), other("blue"), other("green")] == ["blue", "green", "blue"]
    assert service_of("green") == "web-green"


@pytest.mark.parametrize("answer", ["", "\n", "\n\n"])
def test_check_answer_accepts_silence(answer: str) -> None:
    check_answer("set weight web/blue 1", answer)


def test_check_answer_names_the_refusal() -> None:
    with pytest.raises(DeliveryError, match=r"refused `set weight web/x 1`: No such server\."):
        check_answer("set weight web/x 1", "No such server.\n")


def _stats(requests: int, errors_5xx: int = 0, retries: int = 0) -> ServerStats:
    return ServerStats("green", "UP", "L7OK", 256, 0, requests, errors_5xx, retries)


def test_window_counts_between_two_readings() -> None:
    observed = window(_stats(100, 1, 2), _stats(600, 3, 12), 10.0)

    assert (observed.requests, observed.errors) == (500, 12)
    assert observed.error_rate == pytest.approx(0.024)
    assert observed.as_dict() == {"seconds": 10.0, "requests": 500, "errors": 12, "error_rate": 0.024,
                                  "failed_reads": 0, "problem": None, "note": None}


def test_window_after_a_proxy_restart_counts_from_zero() -> None:
    observed = window(_stats(500, 0, 0), _stats(40, 0, 4), 10.0)

    assert (observed.requests, observed.errors) == (40, 4)


def test_window_never_counts_more_errors_than_requests() -> None:
    # A GET retried on the same slot counts as a retry and again as its final 5xx.
    assert window(_stats(0), _stats(5, 5, 5), 1.0).errors == 5


@pytest.mark.parametrize(
    ("requests", "errors", "limit", "verdict"),
    [
        pytest.param(500, 0, 0.02, False, id="clean"),
        pytest.param(500, 10, 0.02, False, id="at-the-limit"),
        pytest.param(500, 11, 0.02, True, id="over-the-limit"),
        pytest.param(0, 0, 0.0, False, id="no-traffic"),
        pytest.param(1000, 1, 0.0, True, id="zero-tolerance"),
    ],
)
def test_too_many_errors(requests: int, errors: int, limit: float, verdict: bool) -> None:
    assert too_many_errors(window(_stats(0), _stats(requests, errors), 10.0), limit) is verdict


@pytest.mark.parametrize(
    ("observed", "minimum", "failure"),
    [
        pytest.param(Window(10.0, 500, 0), 0, None, id="clean"),
        pytest.param(Window(10.0, 0, 0), 0, None, id="quiet-passes-with-no-minimum"),
        pytest.param(Window(10.0, 0, 0), 20, "only 0 requests reached it (deploy.watch_min_requests 20)", id="quiet-under-a-minimum"),
        pytest.param(Window(10.0, 20, 0), 20, None, id="at-the-minimum"),
        pytest.param(Window(10.0, 500, 11), 0, "11 of 500 requests failed (deploy.max_error_rate 0.02)", id="error-rate"),
        pytest.param(Window(10.0, 0, 0, failed_reads=9, problem="stats unreadable: 9 of 9 reads failed"), 0,
                     "stats unreadable: 9 of 9 reads failed", id="problem-first"),
        pytest.param(Window(10.0, 500, 11, problem="the new container exited (code 1)"), 0,
                     "the new container exited (code 1)", id="problem-before-error-rate"),
    ],
)
def test_the_watch_window_fails_closed(observed: Window, minimum: int, failure: str | None) -> None:
    assert window_failure(observed, 0.02, minimum) == failure


def test_a_window_reports_its_reads_problem_and_note() -> None:
    shown = Window(10.0, 0, 0, failed_reads=1, note="no traffic").as_dict()
    assert (shown["failed_reads"], shown["problem"], shown["note"]) == (1, None, "no traffic")


def test_the_runtime_api_is_reached_inside_the_proxy_on_its_loopback_only() -> None:
    """No web container is on the path: the client is bash in the proxy container, to 127.0.0.1."""
    argv = proxy.client_argv("show stat web 4 -1")
    assert argv[:2] == ["bash", "-c"] and argv[3:] == ["runtime-api", "127.0.0.1", "9999", "show stat web 4 -1", ""]
    assert proxy.client_argv("show servers state web", into=proxy.STATE_FILE)[-1] == proxy.STATE_FILE


def test_the_compose_file_keeps_the_runtime_api_off_every_network() -> None:
    config = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["configs"]["haproxy"]["content"]
    sockets = [line.split()[2] for line in config.splitlines() if line.strip().startswith("stats socket")]
    assert sockets and all(s.startswith(("ipv4@127.0.0.1:", "/")) for s in sockets), sockets
    assert "server-state-file " + proxy.STATE_FILE in config and "load-server-state-from-file global" in config


SPEC = proxy.ProxySpec("haproxy:3.0", ("haproxy", "-W", "-db", "-f", "/c"), "0.0.0.0:8000", "global\n  x\n")


@pytest.mark.parametrize(
    ("running", "changes", "replace"),
    [
        pytest.param(SPEC, [], False, id="same"),
        pytest.param(proxy.ProxySpec(SPEC.image, SPEC.command, SPEC.bind, "global\n  x\n\n"), [], False, id="trailing-blank"),
        pytest.param(proxy.ProxySpec(SPEC.image, SPEC.command, SPEC.bind, "global\n  y\n"), ["configuration"], False, id="config-reloads"),
        pytest.param(proxy.ProxySpec("haproxy:2.8", SPEC.command, SPEC.bind, SPEC.config), ["image haproxy:2.8 -> haproxy:3.0"], True, id="image"),
        pytest.param(proxy.ProxySpec(SPEC.image, ("haproxy", "-db", "-f", "/c"), SPEC.bind, SPEC.config),
                     ["command haproxy -db -f /c -> haproxy -W -db -f /c"], True, id="command-before-master-worker"),
        pytest.param(proxy.ProxySpec(SPEC.image, SPEC.command, "0.0.0.0:8001", "other"),
                     ["address 0.0.0.0:8001 -> 0.0.0.0:8000", "configuration"], True, id="port-and-config"),
    ],
)
def test_what_a_deploy_does_to_a_running_proxy(running: proxy.ProxySpec, changes: list[str], replace: bool) -> None:
    found = SPEC.changes(running)
    assert found == changes and proxy.needs_replacing(found) is replace

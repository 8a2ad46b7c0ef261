"""Zero downtime: under a steady load, no release kind makes a single request fail.

A bounded load generator (loadgen.Load: 50 GET / per second on loopback, each on its own
connection, stopping by itself) runs through each deploy on the fault bed (its own registry,
engine and compose project; see faults_helpers). Every connection error, timeout and 5xx
counts as a failed request, and every test expects none: the new release gets requests only
once it is healthy, directly and through the proxy; the old one serves until then, drains,
and stays behind the new one during the watch window.

The tests run in this order and share the bed; each one ends with a release serving.
"""

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.deploy.compose.proxy import client_argv
from tests.integration.support.faults_helpers import CRASH_AFTER, SLOW_SECONDS, FaultBed, Release
from tests.integration.support.loadgen import Load, LoadResult, request
from tests.integration.support.results import record
from tests.integration.support.tasks_helpers import (
    TaskRun,
    free_port,
    get_json,
    one_error_line,
    project_filter,
    remove_project,
    service_containers,
    wait_for,
)

pytestmark = pytest.mark.docker

RATE = 50  # requests per second


def under_load(bed: FaultBed, *args: str, env: dict[str, str] | None = None) -> tuple[TaskRun, LoadResult]:
    """Run `invoke ARGS --json` with steady traffic from a second before until a second after."""
    with Load(bed.port, "/", rate=RATE, max_seconds=600) as load:
        time.sleep(1)
        run = bed.invoke(*args, "--json", env=env)
        time.sleep(1)
    return run, load.result


def assert_no_failed_request(result: LoadResult, what: str, capsys: pytest.CaptureFixture[str], key: str,
                             **facts: object) -> None:
    """No request failed; the figures go to the zero-downtime results file (results.py) under `key`."""
    summary = result.summary()
    path = record("zero-downtime", key, {**summary, **facts, "rate_per_second": RATE})
    with capsys.disabled():
        print(f"\n[zero-downtime] {what}: {json.dumps(summary)} (saved in {path})", flush=True)
    assert result.requests >= 2 * RATE, f"{what}: the load generator sent only {result.requests} requests"
    first = [(o.sent_at, o.status, o.error) for o in result.failures[:5]]
    assert not result.failures, f"{what}: {len(result.failures)} of {result.requests} requests failed, first {first}"




def serving(bed: FaultBed, release: Release) -> None:
    """`release` serving, nothing else of the web app running."""
    bed.ensure_serving(release)
    assert len(service_containers(bed.server, bed.project, "web")) == 1


# -- a good release ------------------------------------------------------------------------------------
def test_a_code_only_release_drops_no_request(bed: FaultBed, capsys: pytest.CaptureFixture[str]) -> None:
    good, second = bed.release("good"), bed.release("second")
    serving(bed, good)
    before = bed.containers()
    runs_before = bed.runs_total()

    run, load = under_load(bed, *bed.deploy_args(second))

    assert run.returncode == 0, run.describe()
    assert_no_failed_request(load, "code-only release", capsys, "code")
    report = run.json()
    assert (report["healthy"], report["previous"], report["version"]) == (True, good.tag, second.tag)
    assert 0 <= report["switch_seconds"] < 5
    assert report["drain_seconds"] is not None and report["drain_seconds"] < 5
    watched = report["monitor"]
    assert watched["requests"] > 0 and watched["errors"] == 0 and not watched["switched_back"], watched
    assert report["seconds"] >= report["pull_seconds"] + report["seconds_to_healthy"]
    assert bed.serving_commit() == second.commit
    after = bed.containers()
    # The new slot took over, the old one is gone, the proxy was not touched, cron was replaced.
    old_slot = next(s for s in ("web-blue", "web-green") if s in before)
    new_slot = f"web-{report['slot']}"
    assert new_slot != old_slot and old_slot not in after and new_slot in after, (before, after)
    assert after["proxy"] == before["proxy"]
    assert after["cron"] != before["cron"]
    assert bed.runs_total() >= runs_before


# -- releases that must never receive a request ----------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "health_timeout", "why"),
    [
        ("crash", "30", "it exited with code"),
        ("healthz500", "8", "it was not healthy within"),  # or "its healthcheck failed", whichever comes first
        ("hang", "10", "it was not healthy within"),
    ],
    ids=["crashes-at-import", "healthz-answers-500", "hangs-at-start"],
)
def test_a_release_that_never_gets_healthy_never_receives_a_request(
    bed: FaultBed, capsys: pytest.CaptureFixture[str], name: str, health_timeout: str, why: str
) -> None:
    second, broken = bed.release("second"), bed.release(name)
    serving(bed, second)
    before = bed.containers()

    run, load = under_load(bed, *bed.deploy_args(broken), env={"INVOKE_DEPLOY_HEALTH_TIMEOUT": health_timeout})

    line = one_error_line(run)
    assert f"{broken.tag} failed" in line and f"{second.tag} is still serving" in line, line
    if name != "healthz500":
        assert why in line, line
    assert_no_failed_request(load, f"a release that {name}", capsys, name, health_timeout_seconds=int(health_timeout))
    report = run.json()
    assert (report["healthy"], report["rolled_back"], report["switch_seconds"]) == (False, True, None)
    assert bed.serving_commit() == second.commit
    assert bed.containers() == before, "the failed release left containers behind, or touched the running ones"


def test_a_release_broken_on_its_pages_is_switched_back_by_the_watch_window(
    bed: FaultBed, capsys: pytest.CaptureFixture[str]
) -> None:
    second, broken = bed.release("second"), bed.release("root500")
    serving(bed, second)
    before = bed.containers()

    run, load = under_load(bed, *bed.deploy_args(broken), env={"INVOKE_DEPLOY_MONITOR": "5"})

    line = one_error_line(run)
    assert "watch window" in line and "switched back" in line and f"{second.tag} is still serving" in line, line
    # The proxy retried every GET the new release failed on the old one: nobody saw the 500s.
    assert_no_failed_request(load, "a release healthy on /healthz but answering 500 on /", capsys, "root500")
    watched = run.json()["monitor"]
    assert watched["switched_back"] and watched["errors"] > 0 and watched["error_rate"] > 0.02, watched
    assert bed.serving_commit() == second.commit
    assert bed.containers() == before, "the switched-back release left containers behind, or cron was replaced"


def test_a_release_that_crash_loops_after_the_switch_is_caught_by_the_watch_window(
    bed: FaultBed, capsys: pytest.CaptureFixture[str]
) -> None:
    """The watch window reads the proxy's stats through the proxy itself, and the new container's state:
    a release that dies after the switch (and is restarted by its policy, again and again) is seen dead."""
    second, crashing = bed.release("second"), bed.release("crashloop")
    serving(bed, second)
    before = bed.containers()

    run, load = under_load(bed, *bed.deploy_args(crashing), env={"INVOKE_DEPLOY_MONITOR": str(CRASH_AFTER + 15)})

    line = one_error_line(run)
    assert "watch window" in line and "switched back" in line and f"{second.tag} is still serving" in line, line
    assert "the new container" in line and ("restarted" in line or "exited" in line or "restarting" in line), line
    assert_no_failed_request(load, "a release that crash-loops after the switch", capsys, "crashloop")
    assert run.json()["monitor"]["switched_back"], run.json()["monitor"]
    assert bed.serving_commit() == second.commit
    assert bed.containers() == before, "the crash-looping release left containers behind, or cron was replaced"


# -- the proxy: its control plane, its configuration, its state ----------------------------------------
CONNECT = ("import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], 9999), timeout=3)\n"
           "except OSError as e:\n    print('refused', e)\nelse:\n    print('connected')\n")


def test_no_app_container_and_not_the_host_can_reach_the_proxys_runtime_api(bed: FaultBed) -> None:
    serving(bed, bed.release("second"))
    proxy_container = bed.container("proxy")
    for role in ("web", "cron"):
        container = bed.container(role)
        for address in ("proxy", proxy_container.network_settings.networks[f"{bed.project}_default"].ip_address):
            answer = bed.server.container.execute(container, ["python", "-c", CONNECT, address], user="app")
            assert answer.startswith("refused"), f"{role} reached the runtime API at {address}:9999: {answer}"
    bridge_address = proxy_container.network_settings.networks[f"{bed.project}_default"].ip_address
    with pytest.raises(OSError):
        socket.create_connection((bridge_address, 9999), timeout=3).close()
    # Where the deploy reaches it: inside the proxy, on its own loopback.
    info = bed.server.container.execute(proxy_container, client_argv("show info"))
    assert "Pid:" in info, info


def test_a_proxy_configuration_change_is_reloaded_under_load_without_a_failed_request(
    bed: FaultBed, capsys: pytest.CaptureFixture[str]
) -> None:
    good, second = bed.release("good"), bed.release("second")
    serving(bed, good)
    proxy_before = bed.container("proxy")
    compose = bed.repo.path / "docker-compose.yml"
    changed = compose.read_text().replace("timeout http-keep-alive 10s", "timeout http-keep-alive 9s")
    assert changed != compose.read_text(), "docker-compose.yml changed: update the proxy configuration change"
    compose.write_text(changed)
    bed.repo.commit("fault test: a proxy configuration change")
    try:
        run, load = under_load(bed, *bed.deploy_args(second))
    finally:
        bed.repo.reset_to(bed.base_commit)

    assert run.returncode == 0, run.describe()
    assert "proxy configuration changed: reloaded" in run.stderr, run.describe()
    assert_no_failed_request(load, "a proxy configuration change (reload) with a release", capsys, "proxy-reload")
    proxy_after = bed.container("proxy")
    assert proxy_after.id == proxy_before.id, "the proxy container was replaced, not reloaded"
    running = bed.server.container.execute(proxy_after, ["cat", "/usr/local/etc/haproxy/haproxy.cfg"])
    assert "timeout http-keep-alive 9s" in running
    # The next deploy, with the configuration back as committed, reloads it again.
    run = bed.deploy(good)
    assert run.returncode == 0 and "proxy configuration changed: reloaded" in run.stderr, run.describe()


def test_a_proxy_image_change_replaces_the_proxy_with_one_short_gap(
    bed: FaultBed, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new deploy.proxy_image needs a new container: said first, checked, replaced; the gap is measured."""
    good, second = bed.release("good"), bed.release("second")
    serving(bed, good)
    proxy_before = bed.container("proxy")
    name, _, _ = bed.testbed.proxy_image.rpartition(":")
    moved = f"{name}:proxy-change-test"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{bed.testbed.proxy_image}", f"docker://{moved}"], check=True)

    run, load = under_load(bed, *bed.deploy_args(second), env={"INVOKE_DEPLOY_PROXY_IMAGE": moved})

    assert run.returncode == 0, run.describe()
    assert f"proxy image {bed.testbed.proxy_image} -> {moved}: replacing the proxy container" in run.stderr, run.describe()
    summary = load.summary()  # not a zero-downtime figure (docs/operations.md, "Keeping the proxy current")
    with capsys.disabled():
        print(f"\n[zero-downtime] proxy image changed (replaced, not zero-downtime): {json.dumps(summary)}", flush=True)
    assert load.unavailable_seconds < 5, summary
    proxy_after = bed.container("proxy")
    assert proxy_after.id != proxy_before.id and proxy_after.config.image == moved
    assert bed.serving_commit() == second.commit
    # Back to the test bed's image: replaced again, and serving.
    back = bed.deploy(good)
    assert back.returncode == 0 and "replacing the proxy container" in back.stderr, back.describe()
    assert bed.container("proxy").config.image == bed.testbed.proxy_image


def test_the_proxy_keeps_its_servers_state_across_a_restart(bed: FaultBed) -> None:
    """A drained slot stays drained when the proxy restarts: the state the deploy saved is loaded."""
    serving(bed, bed.release("second"))
    proxy_container = bed.container("proxy")

    def states() -> dict[str, str]:
        answer = bed.server.container.execute(proxy_container, client_argv("show servers state web"))
        rows = [line.split() for line in answer.splitlines() if line and not line.startswith(("#", "1"))]
        # srv_name: srv_admin_state without RMAINT (0x20: no address yet, recomputed by HAProxy), srv_uweight
        return {row[3]: f"admin {int(row[6]) & ~0x20} weight {row[8]}" for row in rows}

    before = states()
    assert set(before) == {"blue", "green"} and any(not state.startswith("admin 0") for state in before.values()), before
    bed.server.container.restart(proxy_container)
    def answers() -> bool:
        try:
            return "Pid:" in bed.server.container.execute(proxy_container, client_argv("show info"))
        except DockerException:
            return False

    wait_for("the restarted proxy answers", answers, timeout=30)
    assert states() == before


# -- rollback -------------------------------------------------------------------------------------------
def test_rollback_drops_no_request_and_walks_back(bed: FaultBed, capsys: pytest.CaptureFixture[str]) -> None:
    second, slowpage = bed.release("second"), bed.release("slowpage")
    serving(bed, second)
    assert bed.deploy(slowpage).returncode == 0  # history: ... second, slowpage

    run, load = under_load(bed, "rollback", "--host", bed.engine.host)

    assert run.returncode == 0, run.describe()
    assert_no_failed_request(load, "invoke rollback", capsys, "rollback")
    assert run.json()["version"] == second.tag
    assert bed.serving_commit() == second.commit
    # A second rollback goes further back, to the release deployed before `second` (good, from the
    # first test), not back to slowpage, which was rolled back away from.
    again = bed.invoke("rollback", "--host", bed.engine.host, "--json")
    assert again.returncode == 0, again.describe()
    assert again.json()["version"] != slowpage.tag
    assert bed.serving_commit() != slowpage.commit


# -- a long request during the switch -------------------------------------------------------------------
def test_a_slow_request_in_flight_during_the_switch_completes(bed: FaultBed) -> None:
    slowpage, second = bed.release("slowpage"), bed.release("second")
    serving(bed, slowpage)
    task = bed.start_invoke(*bed.deploy_args(second, "--json"), env={"INVOKE_DEPLOY_MONITOR": "0"})
    task.wait_for_stderr("waiting for health", timeout=120)  # the new slot starts: the switch is seconds away
    answer: list[tuple[int | None, str | None]] = []
    slow = threading.Thread(target=lambda: answer.append(request(bed.port, "/slow", timeout=SLOW_SECONDS + 20)))
    slow.start()
    run = task.finish(timeout=300)
    slow.join()

    assert run.returncode == 0, run.describe()
    assert answer == [(200, None)], f"GET /slow answered {answer}"
    report = run.json()
    # The old slot was drained: the deploy waited for the slow request before stopping it.
    assert report["drain_seconds"] > 1, report
    assert bed.serving_commit() == second.commit


# -- a host still on the single-container layout ----------------------------------------------------------
# The shape of docker-compose.yml before the proxy: one `app` service (web and cron) publishing the port.
LEGACY_COMPOSE = """
services:
  app:
    image: ${REGISTRY}/production-control:${APP_TAG}
    init: true
    restart: unless-stopped
    ports: ["127.0.0.1:${HTTP_PORT}:8000"]
    volumes: [data:/data]
    healthcheck:
      test: ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8000/healthz"]
      interval: 1s
volumes:
  data:
"""


def test_a_host_on_the_single_container_layout_moves_to_the_proxy(
    bed: FaultBed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, second = bed.release("good"), bed.release("second")
    project, port = f"{bed.project}-legacy", free_port()
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(LEGACY_COMPOSE)
    (tmp_path / ".env").write_text(f"REGISTRY={bed.registry.address}\nAPP_TAG={good.tag}\nHTTP_PORT={port}\n")
    legacy = DockerClient(host=bed.engine.host, compose_files=[compose], compose_env_files=[tmp_path / ".env"],
                          compose_project_name=project)
    try:
        legacy.compose.up(detach=True, wait=True)
        app = legacy.compose.ps()[0]
        legacy.container.execute(app, ["/usr/local/bin/docker-entrypoint.sh", "job", "record-run"], user="app")
        runs_before = get_json(port, "/runs")["total"]
        env = {"INVOKE_DEPLOY_COMPOSE_PROJECT": project, "INVOKE_DEPLOY_HTTP_PORT": str(port)}
        with Load(port, "/", rate=RATE, max_seconds=600) as load:
            time.sleep(1)
            run = bed.invoke(*bed.deploy_args(second), "--json", env=env)
            time.sleep(1)
        assert run.returncode == 0, run.describe()
        summary = load.result.summary()
        path = record("zero-downtime", "legacy-move", {**summary, "rate_per_second": RATE})
        with capsys.disabled():
            print(f"\n[zero-downtime] single-container layout -> proxy (once): {json.dumps(summary)} (saved in {path})",
                  flush=True)
        # The proxy can only take the port once `app` let it go: one short gap, the only one.
        assert load.result.unavailable_seconds < 5, summary
        assert get_json(port, "/healthz")["commit"] == second.commit
        assert get_json(port, "/runs")["total"] >= runs_before, "the data volume was not carried over"
        services = sorted(s for s in (c.config.labels.get("com.docker.compose.service") for c in
                                      bed.server.container.list(all=True, filters=project_filter(project))))
        assert services == sorted(["proxy", f"web-{run.json()['slot']}", "cron"]), services
    finally:
        remove_project(bed.server, project, [])

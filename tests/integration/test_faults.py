"""Faults during a deploy and in a running container: the previous release keeps serving, no row is lost.

Each test starts from a known good release serving on the fault bed's own engine (see
faults_helpers: its own registry, engine and compose project, so the faults injected here, a
registry killed, an engine restarted, a full disk, touch nothing else on this machine), with at
least one job run recorded, injects one fault, and checks what a user sees: the task's exit
code and its one `error:` line, /healthz afterwards, and GET /runs total, which never drops.

The tests run in this order and share the bed; each one ends with a release serving.
"""

import json
import os
import signal
import subprocess
import time
from contextlib import suppress
from datetime import UTC, datetime

import pytest
from python_on_whales.exceptions import DockerException

from delivery.deploy.compose.proxy import client_argv
from tests.integration.support.appcontainer import processes
from tests.integration.support.faults_helpers import FaultBed, Release
from tests.integration.support.stalling import StallingRegistry
from tests.integration.support.tasks_helpers import one_error_line, pinned_tag, wait_for

pytestmark = pytest.mark.docker

MID_PULL_DEPLOY_TIMEOUT = 240  # the engine retries a broken download 5 times (5+10+15+20 s apart)


@pytest.fixture
def good(bed: FaultBed) -> Release:
    return bed.release("good")


@pytest.fixture
def runs_before(bed: FaultBed, good: Release) -> int:
    """The good release serving, with a job run just recorded: the GET /runs total."""
    total = bed.ensure_serving(good)
    assert total >= 1
    return total


def report(capsys: pytest.CaptureFixture[str], message: str) -> None:
    with capsys.disabled():
        print(f"\n[faults] {message}", flush=True)




def assert_still_serving(bed: FaultBed, release: Release, runs_before: int) -> None:
    assert bed.serving_commit() == release.commit, f"{release.name} is not the release serving"
    assert bed.runs_total() >= runs_before, "the data volume lost job runs"


def assert_untouched(bed: FaultBed, containers: dict[str, str], release: Release, runs_before: int) -> None:
    """A failed deploy left the running containers as they were, `release` serving, every job run kept."""
    assert bed.containers() == containers, "the deploy touched the running containers"
    assert_still_serving(bed, release, runs_before)


def assert_a_retry_deploys(bed: FaultBed, release: Release, runs_before: int) -> None:
    """Once the fault is gone, the same deploy succeeds and keeps every job run."""
    run = bed.deploy(release)
    assert run.returncode == 0, run.describe()
    assert_still_serving(bed, release, runs_before)


# -- the registry is down before the pull ----------------------------------------------------------
def test_a_deploy_with_the_registry_down_changes_nothing_and_a_retry_succeeds(
    bed: FaultBed, good: Release, runs_before: int
) -> None:
    second = bed.release("second")
    containers = bed.containers()
    try:
        bed.registry.stop()
        line = one_error_line(bed.deploy(second))
        assert f"registry {bed.registry.address} is unreachable" in line, line
        assert_untouched(bed, containers, good, runs_before)
    finally:
        bed.registry.start()
    assert_a_retry_deploys(bed, second, runs_before)


# -- the host's disk is full --------------------------------------------------------------------------
def test_a_pull_onto_a_full_disk_fails_in_one_line_and_stops_nothing(
    bed: FaultBed, good: Release, runs_before: int, capsys: pytest.CaptureFixture[str]
) -> None:
    big = bed.release("big")  # one new 160 MB layer, not on the engine yet: this test runs before the mid-pull one
    containers = bed.containers()
    with bed.engine.disk_filled(leave=1 << 20):
        report(capsys, f"disk full: {bed.engine.free_bytes() >> 10} KiB left on the engine's data root")
        line = one_error_line(bed.deploy(big))
        assert f"pulling {bed.registry.address}/production-control:{big.tag}" in line, line
        assert "no space left on device" in line and "the running release is untouched" in line, line
        assert "free disk space" in line, line
        assert bed.containers() == containers, "the deploy touched the running containers"
        assert bed.serving_commit() == good.commit
    assert_still_serving(bed, good, runs_before)
    assert bed.status()["lock"] is None


# -- the registry dies in the middle of a pull -------------------------------------------------------
def test_a_registry_killed_mid_pull_leaves_the_running_release_and_a_retry_succeeds(
    bed: FaultBed, good: Release, runs_before: int, capsys: pytest.CaptureFixture[str]
) -> None:
    big = bed.release("big")
    containers = bed.containers()
    try:
        offset = bed.registry.log_size()
        task = bed.start_invoke(*bed.deploy_args(big))
        # The engine's first finished blob GET (the config); the 160 MB layer is then in flight.
        bed.registry.wait_for_access(offset, "GET /v2/production-control/blobs/", '"docker/', timeout=60)
        bed.registry.kill()
        killed_at = time.monotonic()
        run = task.finish(timeout=MID_PULL_DEPLOY_TIMEOUT)
        report(capsys, f"registry killed mid-pull: the deploy failed {time.monotonic() - killed_at:.1f}s later (engine retries)")
        line = one_error_line(run)
        assert line.startswith(f"error: pulling {bed.registry.address}/production-control:{big.tag}"), line
        assert "the running release is untouched; retry when the registry is back" in line, line
        assert "starting" not in run.stderr, run.describe()
        assert_untouched(bed, containers, good, runs_before)
    finally:
        bed.registry.start()
    assert_a_retry_deploys(bed, big, runs_before)


# -- the engine restarts while a deploy waits for health ----------------------------------------------
def test_an_engine_restart_mid_deploy_brings_back_the_release_that_was_serving(
    bed: FaultBed, good: Release, runs_before: int, capsys: pytest.CaptureFixture[str]
) -> None:
    slow = bed.release("slow")  # sleeps 8 s at import: healthy after about 10 s
    task = bed.start_invoke(*bed.deploy_args(slow), env={"INVOKE_DEPLOY_HEALTH_TIMEOUT": "60"})
    task.wait_for_stderr("waiting for health", timeout=120)
    down = bed.engine.restart()
    run = task.finish(timeout=240)
    report(capsys, f"engine restarted ({down:.1f}s down) during the health wait: deploy exit {run.returncode}")
    line = one_error_line(run)
    assert "the engine stopped answering" in line and f"{good.tag} is still serving" in line, line
    # The restart policy brought the containers back; the deploy removed the new one and kept the old.
    try:
        commit = wait_for("/healthz answering after the engine restart", bed.healthz, timeout=60)["commit"]
    except AssertionError as error:
        proxy = bed.container("proxy")
        seen = bed.server.container.logs(proxy, tail=30)
        with suppress(DockerException):
            seen += bed.server.container.execute(proxy, client_argv("show servers state web"))
        raise AssertionError(f"{error}; the deploy: {run.describe()}; the proxy: {seen}") from None
    assert commit == good.commit, run.describe()
    assert bed.serving_commit() == good.commit
    assert bed.runs_total() >= runs_before
    bed.record_run()  # the volume is still writable by the app
    assert bed.runs_total() > runs_before
    status = bed.status()
    assert status["lock"] is None, "the deploy left its lock behind"
    assert (status["running"]["tag"], status["running"]["health"]) == (good.tag, "healthy")
    assert [slot for slot, info in status["slots"].items() if info] == [status["live_slot"]], status["slots"]


# -- the proxy dies during a deploy ------------------------------------------------------------------
def test_a_killed_proxy_is_restarted_by_its_policy_and_the_deploy_reports_it(
    bed: FaultBed, good: Release, runs_before: int
) -> None:
    second = bed.release("second")
    proxy = bed.container("proxy")
    task = bed.start_invoke(*bed.deploy_args(second, "--json"), env={"INVOKE_DEPLOY_MONITOR": "8"})
    task.wait_for_stderr("watching", timeout=120)
    os.kill(bed.server.container.inspect(proxy).state.pid, signal.SIGKILL)  # a crash, not a `docker stop`
    run = task.finish(timeout=240)
    assert run.returncode == 0, run.describe()
    assert run.json()["proxy_restarts"] == 1, run.stdout
    assert "proxy           restarted during the deploy" not in run.stdout  # --json: the JSON only
    assert bed.server.container.inspect(proxy).restart_count >= 1
    assert bed.serving_commit() == second.commit
    assert bed.runs_total() >= runs_before


# -- cron of the new release cannot start (after the old cron was stopped) -----------------------------
def test_a_cron_that_fails_after_the_old_one_stopped_is_put_back(bed: FaultBed, good: Release, runs_before: int) -> None:
    cronfail = bed.release("cronfail")
    run = bed.deploy(cronfail, "--json")
    line = one_error_line(run)
    assert f"cron of {cronfail.tag} failed" in line and f"cron was put back on {good.tag}" in line, line
    cron = bed.container("cron")
    assert pinned_tag(bed.server, cron) == good.tag
    assert bed.server.container.inspect(cron).state.health.status in ("starting", "healthy")
    bed.record_run()
    assert bed.runs_total() > runs_before
    assert bed.deploy(good).returncode == 0  # back to one release everywhere


# -- a pull that hangs ------------------------------------------------------------------------------------
def test_a_stuck_pull_hits_pull_timeout_and_changes_nothing(bed: FaultBed, good: Release, runs_before: int) -> None:
    medium = bed.release("medium")  # a 24 MB layer the engine does not have yet
    containers = bed.containers()
    with StallingRegistry(bed.registry.address) as stalling:
        started = time.monotonic()
        run = bed.deploy(medium, env={"INVOKE_DEPLOY_REGISTRY": stalling.address, "INVOKE_DEPLOY_PULL_TIMEOUT": "8"})
        seconds = time.monotonic() - started
    line = one_error_line(run)
    assert "did not finish within deploy.pull_timeout (8s)" in line and "the running release is untouched" in line, line
    assert seconds < 60, f"the deploy took {seconds:.0f}s"
    assert stalling.stalled, "no blob download was stalled: the test did not test a stuck pull"
    assert bed.containers() == containers
    assert bed.status()["lock"] is None
    assert_still_serving(bed, good, runs_before)


# -- two deploys at once --------------------------------------------------------------------------------
def test_two_deploys_at_once_one_runs_the_other_refuses(bed: FaultBed, good: Release, runs_before: int) -> None:
    second = bed.release("second")
    history_before = bed.history()
    tasks = [bed.start_invoke(*bed.deploy_args(second)) for _ in range(2)]
    runs = [task.finish(timeout=240) for task in tasks]
    won = [run for run in runs if run.returncode == 0]
    lost = [run for run in runs if run.returncode != 0]
    assert len(won) == 1 and len(lost) == 1, "\n\n".join(run.describe() for run in runs)
    line = one_error_line(lost[0])
    assert f"another deploy to {bed.engine.host.split('://', 1)[1]} is running (held by " in line, line
    assert "starting" not in lost[0].stderr, "the refused deploy did something on the host"
    assert bed.serving_commit() == second.commit
    history = bed.history()
    assert len(history) == len(history_before) + 1, f"history: {history}"
    assert (history[0]["kind"], history[0]["tag"]) == ("deploy", second.tag)
    assert bed.status()["lock"] is None
    assert bed.runs_total() >= runs_before


# -- the deploy itself is signalled (a cancelled CI job, a dropped SSH session) ------------------------------
def interrupted(run, sig: signal.Signals) -> str:
    """A task ended by `sig`: exit 128+sig, no traceback, one `error:` line saying so."""
    assert run.returncode == 128 + sig, run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"deploy interrupted by {sig.name}" in errors[0], run.describe()
    return errors[0]


def assert_released_and_serving(bed: FaultBed, release: Release, runs_before: int, history_head: str) -> None:
    status = bed.status()
    assert status["lock"] is None, "the interrupted deploy left its lock behind"
    assert (status["running"]["tag"], status["running"]["health"]) == (release.tag, "healthy"), status["running"]
    assert [slot for slot, info in status["slots"].items() if info] == [status["live_slot"]], status["slots"]
    assert status["history"][0]["tag"] == history_head, status["history"][:2]
    assert_still_serving(bed, release, runs_before)


def test_a_signal_mid_pull_kills_the_pull_and_changes_nothing(bed: FaultBed, good: Release, runs_before: int) -> None:
    medium = bed.release("medium")
    containers = bed.containers()
    with StallingRegistry(bed.registry.address) as stalling:
        task = bed.start_invoke(*bed.deploy_args(medium), env={"INVOKE_DEPLOY_REGISTRY": stalling.address,
                                                              "INVOKE_DEPLOY_PULL_TIMEOUT": "120"})
        task.wait_for_stderr("pulling", timeout=120)
        wait_for("a stalled blob download", lambda: stalling.stalled or None, timeout=60)
        task.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        run = task.finish(timeout=60)
        seconds = time.monotonic() - signalled
    interrupted(run, signal.SIGTERM)
    assert seconds < 20, f"the interrupted deploy took {seconds:.0f}s to end"
    # The pull is `docker compose --project-name <project> ... pull web-blue`, in a process group of its own.
    left = subprocess.run(["pgrep", "-f", f"compose.*{bed.project}.* pull "], capture_output=True, text=True).stdout.split()
    assert not left, f"the pull outlived the task: pids {left}"
    assert bed.containers() == containers, "the interrupted pull touched the running containers"
    assert_released_and_serving(bed, good, runs_before, good.tag)


@pytest.mark.parametrize(
    ("step", "signals"),
    [
        pytest.param("waiting for health", (signal.SIGTERM,), id="start-sigterm"),
        pytest.param("watching", (signal.SIGHUP,), id="watch-sighup"),
        pytest.param("watching", (signal.SIGINT, signal.SIGTERM), id="watch-ci-cancel"),
    ],
)
def test_a_signal_before_the_switch_is_final_brings_back_the_release_that_was_serving(
    bed: FaultBed, good: Release, runs_before: int, step: str, signals: tuple[signal.Signals, ...]
) -> None:
    release = bed.release("slow" if step == "waiting for health" else "second")
    task = bed.start_invoke(*bed.deploy_args(release), env={"INVOKE_DEPLOY_HEALTH_TIMEOUT": "60",
                                                           "INVOKE_DEPLOY_MONITOR": "8"})
    task.wait_for_stderr(step, timeout=120)
    for sig in signals:  # a cancelled CI job: SIGINT, then SIGTERM while the restore runs
        task.process.send_signal(sig)
        time.sleep(1)
    run = task.finish(timeout=120)
    interrupted(run, signals[0])
    assert_released_and_serving(bed, good, runs_before, good.tag)


def test_a_signal_during_the_cron_replacement_finishes_it_and_keeps_the_switch(
    bed: FaultBed, good: Release, runs_before: int
) -> None:
    second = bed.release("second")
    task = bed.start_invoke(*bed.deploy_args(second))
    task.wait_for_stderr("replacing cron", timeout=180)
    task.process.send_signal(signal.SIGTERM)
    run = task.finish(timeout=120)
    interrupted(run, signal.SIGTERM)
    cron = bed.container("cron")
    assert pinned_tag(bed.server, cron) == second.tag, "the cron replacement was cut short"
    assert_released_and_serving(bed, second, runs_before, second.tag)


# -- SIGTERM while cron jobs run --------------------------------------------------------------------------
INTEGRITY = """
import json, sqlite3
conn = sqlite3.connect("/data/production_control.db")
rows = conn.execute("SELECT id, finished_at, status FROM job_runs").fetchall()
print(json.dumps({
    "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
    "rows": len(rows),
    "partial": [row for row in rows if not row[1] or not row[2]],
}))
"""


def test_a_stop_during_cron_jobs_leaves_a_sound_database(bed: FaultBed, good: Release, runs_before: int) -> None:
    container = bed.container("cron")
    # Jobs back to back, as fast as they go, in two loops (the job lock makes one of two skip).
    loop = "while :; do /usr/local/bin/docker-entrypoint.sh job record-run; done"
    loops = [
        subprocess.Popen(
            ["docker", "-H", bed.engine.host, "exec", "-u", "app", container.id, "sh", "-c", loop],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]  # fmt: skip
    try:
        wait_for("jobs writing rows", lambda: bed.runs_total() >= runs_before + 3, timeout=30)
        started = time.monotonic()
        bed.server.container.stop(container)
        stop_seconds = time.monotonic() - started
    finally:
        for process in loops:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    state = bed.server.container.inspect(container).state
    assert (state.status, state.exit_code) == ("exited", 0), f"the entrypoint did not stop cleanly: {state.exit_code}"
    assert stop_seconds < 15, f"docker stop took {stop_seconds:.1f}s"

    volume = next(mount.name for mount in bed.server.container.inspect(container).mounts if mount.destination == "/data")
    checked = bed.server.run(
        container.config.image, ["-c", INTEGRITY], entrypoint="python3", user="app", remove=True,
        volumes=[(volume, "/data")],
    )  # fmt: skip
    result = json.loads(str(checked))
    assert result["integrity"] == [["ok"]], result
    assert result["partial"] == [], f"rows without finished_at or status: {result['partial']}"
    assert result["rows"] >= runs_before + 3

    bed.server.container.start(container)
    assert bed.serving_commit() == good.commit
    assert bed.runs_total() == result["rows"]


# -- the web process dies ----------------------------------------------------------------------------------
def test_a_killed_web_process_is_restarted_by_the_restart_policy(bed: FaultBed, good: Release, runs_before: int) -> None:
    container = bed.container()
    restarts = bed.server.container.inspect(container).restart_count
    web = [p for p in processes(bed.server, container) if p.is_web_app]
    assert len(web) == 1, f"web processes: {web}"
    since = datetime.now(UTC)
    kill = f"import os; os.kill({web[0].pid}, {int(signal.SIGKILL)})"
    bed.server.container.execute(container, ["python3", "-c", kill], user="app")

    def exit_codes() -> list[int] | None:
        events = bed.server.system.events(
            since=since, until=datetime.now(UTC), filters={"container": container.id, "event": "die"}
        )
        codes = [int(event.actor.attributes["exitCode"]) for event in events]
        return codes or None

    assert all(code != 0 for code in wait_for("the container exiting", exit_codes, timeout=30))
    def restarted() -> bool:
        return bed.server.container.inspect(container).restart_count > restarts

    wait_for("the restart policy restarting it", restarted, timeout=30)
    assert bed.serving_commit() == good.commit
    bed.record_run()
    assert bed.runs_total() > runs_before

"""Day-2 operations as an operator runs them: retention and prune, logs, run-job, the deploy lock wait.

Every command is the `invoke` CLI in a clone of the work tree, deploying to an engine of this
module's own (a ScratchEngine, like the test bed's overlay2 server): nothing else pulls or
removes images there, so its disk usage (`docker system df`) moves only with what the tasks do.

Releases: one real build-app of the clone (the base), then ten releases made in the registry
from it without a build (tasks_helpers.push_derived_release): each adds a 1 MiB code layer
(a code-only release) on top of an 8 MiB "deps" layer, which changes once, at release 5
(the dependency change). They are deployed in order with keep_releases=3, after release 0
was deployed by a second compose project on the same engine.

The fixtures form one chain, each step run once: other project -> ten deploys -> rollback to
the oldest kept -> prune by hand -> concurrent deploys with --lock-wait -> jobs and logs.
"""

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from python_on_whales import DockerClient

from delivery.hosts.lock import lock_name, my_labels
from tests.integration.support.faults_helpers import FaultBedUnavailable, RunningTask, ScratchEngine
from tests.integration.support.results import record
from tests.integration.support.tasks_helpers import (
    APP_REPOSITORY,
    REGISTRY,
    Clone,
    TaskRun,
    accesses_between,
    app_container,
    free_port,
    get_json,
    log_size,
    only_an_error_line,
    pinned_tag,
    push_derived_release,
    succeeded,
    wait_for,
)
from tests.integration.support.testbed import Testbed

pytestmark = pytest.mark.docker

KEEP = 3
RELEASES = 10
DEPS_CHANGE = 5  # releases before it carry the old deps layer, from it on the new one
CODE_BYTES, DEPS_BYTES = 1 << 20, 8 << 20  # random, so compression keeps them as large
DEPS_BUILD_TIMEOUT = 1200
LOCK_WAIT = "60"
JOB = "record-run"
LOCK_FILE = f"/run/production-control/locks/{JOB}.lock"


@dataclass
class Site:
    engine: ScratchEngine
    clone: Clone
    project: str
    port: int
    other_project: str
    other_port: int

    @property
    def host(self) -> str:
        return self.engine.host

    @property
    def server(self) -> DockerClient:
        return self.engine.client

    def invoke(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> TaskRun:
        return self.clone.invoke(*args, env=env, timeout=timeout)

    def deploy(self, tag: str, *flags: str, env: dict[str, str] | None = None) -> TaskRun:
        return self.invoke("deploy", "--host", self.host, "--version", tag, "--json", *flags, env=env)

    def status(self) -> dict[str, Any]:
        return succeeded(self.invoke("status", "--host", self.host, "--json")).json()

    def disk_usage(self) -> int:
        """`docker system df`'s image bytes, read straight from the engine's socket (not through the tasks)."""
        transport = httpx.HTTPTransport(uds=str(self.engine.socket))
        with httpx.Client(transport=transport, timeout=60) as client:
            return int(client.get("http://docker/system/df", params={"type": "image"}).json()["LayersSize"])

    def refs(self) -> set[str]:
        return {ref for image in self.server.image.list() for ref in image.repo_tags or []}

    def app_container(self, project: str | None = None, role: str = "web"):
        """The running container of `role` (web: the live slot; cron) of the project."""
        return app_container(self.server, project or self.project, role)






# -- the site ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, testbed: Testbed) -> Iterator[Site]:
    engine = ScratchEngine(Path(tempfile.mkdtemp(prefix="pco-", dir="/tmp")), bridge="pcops0", bridge_cidr="10.213.23.1/24")
    try:
        engine.start()
    except FaultBedUnavailable as error:
        engine.close()
        pytest.fail(str(error), pytrace=False)
    try:
        clone = Clone.create(tmp_path_factory.mktemp("operations") / "repo", testbed)
        tag = uuid.uuid4().hex[:8]
        site = Site(engine, clone, f"pcops-{tag}", free_port(), f"pcops-other-{tag}", free_port())
        clone.env.update(
            INVOKE_DEPLOY_COMPOSE_PROJECT=site.project,
            INVOKE_DEPLOY_HTTP_PORT=str(site.port),
            INVOKE_DEPLOY_HEALTH_TIMEOUT="60",
            INVOKE_DEPLOY_KEEP_RELEASES=str(KEEP),
            INVOKE_DEPLOY_MONITOR="0",  # no watch window: these tests are about what stays on the disk
            HTTP_BIND="127.0.0.1",
        )
        yield site
    finally:
        engine.close()
        shutil.rmtree(engine.engine.root, ignore_errors=True)


@pytest.fixture(scope="module")
def releases(site: Site) -> list[str]:
    """The base release (a real build of the clone), then the ten releases made from it."""
    succeeded(site.invoke("build-deps", timeout=DEPS_BUILD_TIMEOUT))
    base = succeeded(site.invoke("build-app", "--json")).json()["tag"]
    deps = [{"opt/deps-old.bin": os.urandom(DEPS_BYTES)}, {"opt/deps-new.bin": os.urandom(DEPS_BYTES)}]
    tags = []
    for number in range(RELEASES):
        tag = f"{site.clone.app_version}-{secrets.token_hex(6)}"
        code = {f"app/release-{number}.bin": os.urandom(CODE_BYTES)}
        push_derived_release(REGISTRY, APP_REPOSITORY, base, tag, [deps[number >= DEPS_CHANGE], code])
        tags.append(tag)
    return tags


@pytest.fixture(scope="module")
def other_project(site: Site, releases: list[str]) -> str:
    """Release 0, deployed by a second compose project on the same engine."""
    env = {"INVOKE_DEPLOY_COMPOSE_PROJECT": site.other_project, "INVOKE_DEPLOY_HTTP_PORT": str(site.other_port)}
    succeeded(site.deploy(releases[0], env=env))
    return releases[0]


@dataclass(frozen=True)
class Deploys:
    reports: list[dict[str, Any]]
    disk: list[int]  # docker system df after each deploy


@pytest.fixture(scope="module")
def deploys(site: Site, releases: list[str], other_project: str) -> Deploys:
    reports, disk = [], []
    for tag in releases:
        reports.append(succeeded(site.deploy(tag)).json())
        disk.append(site.disk_usage())
    return Deploys(reports, disk)


@pytest.fixture(scope="module")
def rollback(site: Site, releases: list[str], deploys: Deploys, testbed: Testbed) -> tuple[TaskRun, tuple[int, int]]:
    oldest_kept = releases[-KEEP]
    before = log_size(testbed.registry_log)
    run = succeeded(site.invoke("rollback", "--host", site.host, "--to", oldest_kept, "--json"))
    return run, (before, log_size(testbed.registry_log))


@dataclass(frozen=True)
class Prune:
    dry_run: TaskRun
    disk_around_dry_run: tuple[int, int]
    run: TaskRun
    disk_around_run: tuple[int, int]


@pytest.fixture(scope="module")
def pruned(site: Site, rollback: tuple[TaskRun, tuple[int, int]]) -> Prune:
    before = site.disk_usage()
    dry_run = succeeded(site.invoke("prune", "--host", site.host, "--keep", "1", "--dry-run", "--json"))
    middle = site.disk_usage()
    run = succeeded(site.invoke("prune", "--host", site.host, "--keep", "1", "--json"))
    return Prune(dry_run, (before, middle), run, (middle, site.disk_usage()))


@pytest.fixture(scope="module")
def concurrent_deploys(site: Site, releases: list[str], pruned: Prune) -> tuple[TaskRun, TaskRun]:
    """Two deploys started together, with --lock-wait: one takes the lock, the other waits for it."""
    tasks = [RunningTask(site.clone, ("deploy", "--host", site.host, "--version", tag, "--lock-wait", LOCK_WAIT), {})
             for tag in (releases[-2], releases[-1])]
    first, second = (task.finish() for task in tasks)
    return first, second


# -- retention ---------------------------------------------------------------------------------------------
def test_deploys_keep_exactly_the_newest_releases(site: Site, releases: list[str], deploys: Deploys) -> None:
    # From the fifth deploy on, each pruned one release; the prediction is beside each measurement.
    # Release 0 is never pruned: the other project's container uses it.
    for number, report in enumerate(deploys.reports):
        pruned = report["pruned"]
        assert pruned["errors"] == [], report
        expected = [releases[number - KEEP]] if number > KEEP else []
        assert pruned["pruned"] == expected, f"deploy {number}: {pruned}"
        if number >= KEEP:
            assert pruned["why_kept"][releases[0]] == "used by a container", f"deploy {number}: {pruned}"
        if number > KEEP:
            assert pruned["freed_bytes"] >= CODE_BYTES, f"deploy {number}: {pruned}"
        if pruned["freed_bytes"]:
            assert abs(pruned["predicted_freed_bytes"] - pruned["freed_bytes"]) <= pruned["freed_bytes"] / 100, pruned
    status = site.status()
    kept = list(dict.fromkeys(entry["tag"] for entry in status["history"]))
    # The newest three, plus what runs: release 0, which the other project runs.
    assert kept == [*releases[::-1][:KEEP], releases[0]]
    assert status["releases"]["count"] == KEEP + 1 and status["releases"]["bytes"] > 0
    on_host = {ref.rsplit(":", 1)[1] for ref in site.refs() if ref.startswith(f"{REGISTRY}/{APP_REPOSITORY}:")}
    assert on_host & set(releases) == {*releases[-KEEP:], releases[0]}
    history_ref = re.compile(rf"{site.project}-history:[0-9]{{8}}T[0-9]{{12}}Z-(?:deploy|rollback|restore)-(?P<tag>.+)")
    history_tags = {m["tag"] for m in map(history_ref.fullmatch, site.refs()) if m}
    assert history_tags == {*releases[-KEEP:], releases[0]}

    # Pruning release 4, the last on the old deps layer, would free that layer, but release 0 (other project) holds it.
    # The disk stays flat: from the fourth deploy on, each adds a release and removes one.
    assert max(deploys.disk[KEEP:]) - min(deploys.disk[KEEP:]) <= DEPS_BYTES + 2 * CODE_BYTES, deploys.disk
    record("retention", "deploys", {
        "keep_releases": KEEP, "code_layer_bytes": CODE_BYTES, "deps_layer_bytes": DEPS_BYTES, "deps_change_at": DEPS_CHANGE,
        "disk_bytes": deploys.disk, "pruned": [len(r["pruned"]["pruned"]) for r in deploys.reports],
        "freed_bytes": [r["pruned"]["freed_bytes"] or 0 for r in deploys.reports],
    })


def test_pruning_never_removes_what_another_compose_project_uses(site: Site, other_project: str, deploys: Deploys) -> None:
    container = site.app_container(site.other_project)
    assert container.config.image.startswith(f"{REGISTRY}/{APP_REPOSITORY}:")
    assert pinned_tag(site.server, container) == other_project
    assert site.server.image.exists(container.image)
    assert get_json(site.other_port, "/healthz")["status"] == "ok"
    other_history = [ref for ref in site.refs() if ref.startswith(f"{site.other_project}-history:")]
    assert len(other_history) == 1 and other_history[0].endswith(f"-deploy-{other_project}")


def test_rollback_to_the_oldest_kept_release_needs_no_pull(
    site: Site, releases: list[str], rollback: tuple[TaskRun, tuple[int, int]], testbed: Testbed
) -> None:
    run, window = rollback
    report = run.json()
    assert (report["version"], report["healthy"], report["rolled_back"]) == (releases[-KEEP], True, True)
    assert "no pull" in run.stderr
    fetched = [a for a in accesses_between(testbed.registry_log, *window) if releases[-KEEP] in a.path]
    assert fetched == [], "the rollback asked the registry for the release"
    assert pinned_tag(site.server, site.app_container()) == releases[-KEEP]


def test_prune_reports_the_bytes_docker_system_df_measures(site: Site, releases: list[str], pruned: Prune) -> None:
    # Running: the oldest kept (rolled back to). The rollback target walks back from it: release 0,
    # the only older one left (the newer two were rolled back away from). --keep 1 prunes those two.
    predicted = pruned.dry_run.json()
    assert predicted["dry_run"] is True and predicted["freed_bytes"] is None
    assert pruned.disk_around_dry_run[0] == pruned.disk_around_dry_run[1], "the dry run removed something"
    report = pruned.run.json()
    assert report["kept"] == [releases[-KEEP], releases[0]]
    assert report["why_kept"] == {releases[-KEEP]: "running", releases[0]: "rollback target"}
    assert report["pruned"] == predicted["pruned"] == [releases[-1], releases[-2]]
    before, after = pruned.disk_around_run
    measured = before - after
    assert measured >= CODE_BYTES
    assert abs(report["freed_bytes"] - measured) <= measured / 100, (report, before, after)
    assert abs(report["predicted_freed_bytes"] - measured) <= measured / 100, (report, measured)
    assert predicted["predicted_freed_bytes"] == report["predicted_freed_bytes"]
    assert not {f"{REGISTRY}/{APP_REPOSITORY}:{tag}" for tag in releases[-2:]} & site.refs()
    record("retention", "prune", {"pruned": len(report["pruned"]), "predicted_freed_bytes": report["predicted_freed_bytes"],
                                  "reported_freed_bytes": report["freed_bytes"], "measured_freed_bytes": measured})


# -- the deploy lock -----------------------------------------------------------------------------------
def test_two_deploys_with_lock_wait_both_succeed_one_after_the_other(
    site: Site, releases: list[str], concurrent_deploys: tuple[TaskRun, TaskRun]
) -> None:
    runs = [succeeded(run) for run in concurrent_deploys]
    waited = [run for run in runs if "for the deploy lock" in run.stderr]
    assert len(waited) == 1, "exactly one of them should have waited:\n" + "\n".join(run.describe() for run in runs)
    assert re.search(r"waiting up to 60s for the deploy lock, held by \S+@\S+ pid \d+ since ", waited[0].stderr), waited[0].describe()
    assert "got the deploy lock" in waited[0].stderr
    history = [(entry["kind"], entry["tag"]) for entry in site.status()["history"]]
    assert sorted(history[:2]) == sorted([("deploy", releases[-1]), ("deploy", releases[-2])])
    # The one that waited deployed last: its release runs.
    assert pinned_tag(site.server, site.app_container()) == history[0][1]
    assert f":{history[0][1]}" in waited[0].stdout + waited[0].stderr


def test_a_stale_lock_is_reported_with_the_unlock_command(
    site: Site, releases: list[str], concurrent_deploys: tuple[TaskRun, TaskRun]
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    # A lock this machine took (its machine id, boot and pid namespace) for a process that is gone.
    labels = my_labels(site.project) | {"owner": f"ci@{socket.gethostname()} pid {gone.pid}", "pid": str(gone.pid),
                                        "pid_start": "", "since": "2026-11-29T00:00:00Z"}
    site.server.volume.create(lock_name(site.project), labels=labels)
    started = time.monotonic()
    run = site.invoke("deploy", "--host", site.host, "--version", releases[-1], "--lock-wait", LOCK_WAIT)
    # The pull comes before the lock (it touches nothing); then one error line, and nothing started.
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.describe()
    assert len(run.error_lines) == 1 and run.stderr_lines[-1] == run.error_lines[0], run.describe()
    assert "starting" not in run.stderr, run.describe()
    line = run.error_lines[0]
    assert time.monotonic() - started < 30, "a stale lock was waited for"
    assert "stale" in line and f"pid {gone.pid}" in line and f"`invoke unlock --host {site.host}`" in line, line
    unlocked = succeeded(site.invoke("unlock", "--host", site.host)).stdout.strip()
    assert "removed a stale deploy lock" in unlocked and f"pid {gone.pid}" in unlocked, unlocked


# -- jobs and logs -------------------------------------------------------------------------------------
def runs(site: Site) -> dict[str, Any]:
    return get_json(site.port, "/runs")


def test_run_job_records_a_run_as_cron_does(site: Site, concurrent_deploys: tuple[TaskRun, TaskRun]) -> None:
    before = runs(site)["total"]
    run = succeeded(site.invoke("run-job", JOB, "--host", site.host))
    assert re.search(rf"job={JOB} status=ok .*rows={before + 1}", run.stdout), run.describe()
    after = runs(site)
    assert after["total"] == before + 1
    mine = after["runs"][0]
    # A run cron started by itself (every minute): the same row, but for its times and counts.
    cron_row = wait_for("cron ran the job by itself", lambda: next(
        (row for row in runs(site)["runs"] if row["id"] != mine["id"] and row["job"] == JOB), None), timeout=75, interval=2)
    fields = ("job", "status", "site_name", "app_version")
    assert {f: mine[f] for f in fields} == {f: cron_row[f] for f in fields}
    assert re.fullmatch(r"rows_before=\d+ db_bytes=\d+", mine["detail"]) and re.fullmatch(r"rows_before=\d+ db_bytes=\d+", cron_row["detail"])


def test_run_job_returns_a_failing_jobs_exit_code(site: Site, concurrent_deploys: tuple[TaskRun, TaskRun]) -> None:
    container = site.app_container(role="cron")
    # A database the job cannot write (SQLite gives the -shm file it creates meanwhile the same mode: restore all).
    site.server.container.execute(container, ["chmod", "0400", "/data/production_control.db"], user="app")
    try:
        run = site.invoke("run-job", JOB, "--host", site.host)
    finally:
        site.server.container.execute(container, ["sh", "-c", "chmod 0644 /data/production_control.db*"], user="app")
    assert run.returncode == 1, run.describe()
    assert "Traceback" not in run.stderr
    assert f"job={JOB} status=error" in run.stdout + run.stderr, run.describe()


def test_run_job_does_not_start_a_job_that_is_already_running(site: Site, concurrent_deploys: tuple[TaskRun, TaskRun]) -> None:
    container = site.app_container(role="cron")  # where cron runs jobs, and run-job too

    def lock_held() -> bool:
        probe = ["sh", "-c", f"flock --nonblock {LOCK_FILE} true || echo held"]
        return site.server.container.execute(container, probe, user="app").strip() == "held"

    # What a run that cron started holds while it runs: the job's lock, as the app user.
    site.server.container.execute(container, ["flock", LOCK_FILE, "sleep", "6"], user="app", detach=True)
    wait_for("the job lock is held", lock_held)
    before = runs(site)["total"]
    run = site.invoke("run-job", JOB, "--host", site.host)
    wait_for("the job lock was released", lambda: not lock_held(), timeout=15)
    assert run.returncode == 1, run.describe()
    assert len(run.error_lines) == 1 and "already running" in run.error_lines[0] and "not started twice" in run.error_lines[0]
    assert runs(site)["total"] == before


def test_logs_show_the_web_app_and_the_cron_job(site: Site, concurrent_deploys: tuple[TaskRun, TaskRun]) -> None:
    succeeded(site.invoke("run-job", JOB, "--host", site.host))
    run = succeeded(site.invoke("logs", "--host", site.host, "--tail", "500"))
    assert '"GET /healthz HTTP/1.1" 200' in run.stdout, run.describe()  # uvicorn, answering the healthcheck
    assert f"job={JOB} status=ok" in run.stdout, run.describe()
    assert "\x1b" not in run.stdout
    cron = succeeded(site.invoke("logs", "--host", site.host, "--service", "cron", "--since", "10m"))
    assert f"job={JOB} status=ok" in cron.stdout
    both = succeeded(site.invoke("logs", "--host", site.host, "--host", site.host, "--tail", "3"))
    label = site.host.split("://", 1)[1]
    assert both.stdout.strip() and all(line.startswith(f"{label} | ") for line in both.stdout.splitlines()), both.describe()


def test_logs_follow_stops_cleanly_on_ctrl_c(site: Site, concurrent_deploys: tuple[TaskRun, TaskRun]) -> None:
    task = RunningTask(site.clone, ("logs", "--host", site.host, "--follow", "--tail", "1"), {})
    wait_for("logs --follow printed a line", lambda: task._stdout, timeout=30)
    followers = compose_logs_pids(site.project)
    assert followers, "no `docker compose logs` process while following"
    task.process.send_signal(signal.SIGINT)
    run = task.finish(timeout=15)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.describe()
    assert run.seconds < 60
    wait_for("the compose logs processes ended", lambda: not compose_logs_pids(site.project), timeout=10)


def compose_logs_pids(project: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"logs" in argv and project.encode() in argv:
                pids.append(int(entry.name))
    return pids


# -- bad input: one line, nothing changed --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("prune", "--keep", "0"), "keep at least 1 release"),
        (("run-job", "no-such-job"), "unknown job 'no-such-job'"),
        (("logs", "--service", "database"), "unknown service 'database': use web, cron, proxy"),
        (("deploy", "--lock-wait", "soon"), "invalid --lock-wait 'soon'"),
    ],
    ids=["prune-keep-0", "unknown-job", "unknown-service", "lock-wait-not-a-number"],
)
def test_bad_input_is_one_line_and_changes_nothing(
    site: Site, concurrent_deploys: tuple[TaskRun, TaskRun], args: tuple[str, ...], needle: str
) -> None:
    before = (site.status()["history"], sorted(site.refs()), site.disk_usage())
    line = only_an_error_line(site.invoke(*args, "--host", site.host))
    assert needle in line, line
    assert (site.status()["history"], sorted(site.refs()), site.disk_usage()) == before

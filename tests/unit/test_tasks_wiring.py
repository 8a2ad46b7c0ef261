"""Tier 2: the invoke tasks, run through invoke's own CLI program with the runbooks of `delivery.usecases` faked.

Checks that flags reach the commands, that configuration comes from invoke.yaml and
INVOKE_DEPLOY_* in that order, that a DeliveryError is one line and exit code 1,
and the text the tasks print (delivery/ui/text.py: format_report, format_status, ...).
"""

import inspect
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke import Program

from delivery.config.settings import DEFAULTS, load_config
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.reports import HostStatus, PullPrediction
from delivery.errors import DeliveryError, DeployFailed
from delivery.hosts.retention import PruneReport
from delivery.release.pullreport import PullPlan
from delivery.ui import text
from delivery.ui.progress import STDERR
from delivery.usecases import building, diagnosing, operating, releasing

RUNBOOKS = (building, diagnosing, operating, releasing)

REPO_ROOT = Path(__file__).resolve().parents[2]
TAG = "1.0.0-abcdef123456"

# What tasks receive as c.config.deploy: the repository's invoke.yaml over the collection defaults.
REPO_SECTION = {**DEFAULTS, **yaml.safe_load((REPO_ROOT / "invoke.yaml").read_text())["deploy"]}
FULL_REPORT = {
    "host": "local",
    "image": f"localhost:5000/production-control:{TAG}",
    "version": TAG,
    "digest": "sha256:abc",
    "store": "containerd",
    "previous": "1.0.0-0123456789ab",
    "predicted_layers": 1,
    "total_layers": 9,
    "predicted_bytes": 4096,
    "total_bytes": 60_000_000,
    "pull_seconds": 1.5,
    "measured_layers": 1,
    "measured_bytes": 3620,
    "seconds_to_healthy": 3.25,
    "slot": "green",
    "switch_seconds": 0.12,
    "drain_seconds": 0.5,
    "monitor": {"seconds": 10.0, "requests": 480, "errors": 0, "error_rate": 0.0, "switched_back": False},
    "proxy_restarts": 0,
    "seconds": 16.4,
    "healthy": True,
    "rolled_back": False,
    "error": None,
}
PRUNE_REPORT = {
    "host": "a", "keep": 1, "kept": ["1.0.1-bbbbbbbbbbbb", "1.0.0-aaaaaaaaaaaa"],
    "why_kept": {"1.0.1-bbbbbbbbbbbb": "running", "1.0.0-aaaaaaaaaaaa": "rollback target"},
    "pruned": ["0.9.0-cccccccccccc"], "removed_refs": [], "deleted_images": 1,
    "predicted_freed_bytes": 2_100_000, "freed_bytes": 2_000_000, "disk_before": 9_000_000, "disk_after": 7_000_000,
    "dry_run": False, "errors": [],
}  # fmt: skip
DRY = PullPrediction("a", "", PullPlan(f"localhost:5000/production-control:{TAG}", "sha256:abc", "overlay2", total_layers=9,
                                       pulled_layers=2, total_bytes=60_000_000, pulled_bytes=1_234_567,
                                       pulled_digests=("sha256:l8", "sha256:l9")))


def deployed(**fields: Any) -> DeployReport:
    """FULL_REPORT, with `fields` changed, as the typed report the runbooks return."""
    return DeployReport(**{**FULL_REPORT, **fields})


def rolled_back(host: str) -> DeployReport:
    return DeployReport(host=host, image=f"r/production-control:{TAG}", version=TAG, digest="sha256:abc")


def pruned(**fields: Any) -> PruneReport:
    return PruneReport(**{**PRUNE_REPORT, **fields})


CI_RESULT = {
    "deps": {"image": "localhost:5000/production-control-deps:deps-1.0.0-abcdef123456", "digest": "sha256:deps", "built": False},
    "app": {"image": f"localhost:5000/production-control:{TAG}", "digest": "sha256:app"},
}


class Recorder:
    """Replaces the runbook <name> (in its module of delivery.usecases); records each call's arguments bound to the real signature's names."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def fake(self, name: str, result: Any = None, raises: Exception | None = None) -> None:
        module = next(m for m in RUNBOOKS if hasattr(m, name))
        real = getattr(module, name)

        def stand_in(*args: Any, **kwargs: Any) -> Any:
            bound = inspect.signature(real).bind(*args, **kwargs)  # a call the real function would refuse fails here
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            if arguments.get("reporter") is STDERR:  # the tasks' progress goes to stderr: the runbooks' default
                del arguments["reporter"]
            if "section" in arguments:
                arguments["section"] = dict(arguments["section"])
            self.calls.append((name, arguments))
            if raises is not None:
                raise raises
            return result

        self.monkeypatch.setattr(module, name, stand_in)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    return Recorder(monkeypatch)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No INVOKE_* variables or user-level invoke config from the machine running the tests."""
    for key in list(os.environ):
        if key.startswith("INVOKE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # invoke's loader imports the tasks/ package as `tasks` and puts its folder on sys.path: undo both.
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ["tasks", *(m for m in list(sys.modules) if m.startswith("tasks."))]:
        if name in sys.modules:
            monkeypatch.setitem(sys.modules, name, sys.modules[name])
        else:
            monkeypatch.setitem(sys.modules, name, None)
            monkeypatch.delitem(sys.modules, name)


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def invoke(clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `invoke ARGS` as the CLI does: find the tasks package from the working directory, load its invoke.yaml."""

    def run(*argv: str, cwd: Path = REPO_ROOT) -> tuple[int, str, str]:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            Program(name="Invoke", binary="inv[oke]", binary_names=["invoke", "inv"], version="test").run(["invoke", *argv])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return run


# -- flags reach the commands ------------------------------------------------------------------------------
def test_deploy_passes_hosts_version_and_dry_run(invoke: Run, recorder: Recorder) -> None:
    recorder.fake("deploy", [DRY, PullPrediction("b", DRY.platform, DRY.plan)])
    code, out, err = invoke("deploy", "--host", "a", "--host", "b", "--version", TAG, "--dry-run")
    assert (code, err) == (0, "")
    assert recorder.calls == [
        ("deploy", {"section": REPO_SECTION, "hosts": ["a", "b"], "version": TAG, "dry_run": True, "lock_wait": None}),
    ]
    line = f"localhost:5000/production-control:{TAG} would pull 2/9 layers, 1.2 MB of 60.0 MB (overlay2 store)"
    assert out == f"a: {line}\n\nb: {line}\n"


def test_deploy_defaults(invoke: Run, recorder: Recorder) -> None:
    recorder.fake("deploy", [deployed()])
    code, out, _ = invoke("deploy", "--json")
    assert code == 0
    assert recorder.calls == [("deploy", {"section": REPO_SECTION, "hosts": [], "version": None, "dry_run": False, "lock_wait": None})]
    assert json.loads(out) == deployed().as_dict()  # one host: the report itself, not {"hosts": [...]}
    assert FULL_REPORT.items() <= json.loads(out).items()


@pytest.mark.parametrize(
    ("argv", "name", "result", "arguments"),
    [
        pytest.param(["build-deps"], "build_deps", {"image": "i", "digest": "d", "built": False},
                     {"section": REPO_SECTION, "force": False, "use_cache": True, "refresh": False}, id="build-deps-defaults"),
        pytest.param(["build-deps", "--force", "--no-cache"], "build_deps", {"image": "i", "digest": "d", "built": True},
                     {"section": REPO_SECTION, "force": True, "use_cache": False, "refresh": False}, id="build-deps-force-no-cache"),
        pytest.param(["build-deps", "--refresh"], "build_deps", {"image": "i", "digest": "d", "built": False},
                     {"section": REPO_SECTION, "force": False, "use_cache": True, "refresh": True}, id="build-deps-refresh"),
        pytest.param(["audit", "--lock", "/tmp/fixture.lock", "--json"], "audit", {"audited": 1, "ignored": []},
                     {"section": REPO_SECTION, "lock": Path("/tmp/fixture.lock")}, id="audit-lock"),
        pytest.param(["build-app", "--no-cache"], "build_app", {"image": "i", "digest": "d"},
                     {"section": REPO_SECTION, "use_cache": False}, id="build-app-no-cache"),
        pytest.param(["rollback", "--host", "ssh://deploy@plant-a", "--to", TAG], "rollback", [rolled_back("plant-a")],
                     {"section": REPO_SECTION, "hosts": ["ssh://deploy@plant-a"], "to": TAG}, id="rollback-to"),
        pytest.param(["unlock", "--host", "tcp://10.0.0.5:2376"], "unlock", ["10.0.0.5:2376: no deploy lock was held"],
                     {"section": REPO_SECTION, "hosts": ["tcp://10.0.0.5:2376"], "force": False}, id="unlock-host"),
        pytest.param(["unlock", "--host", "h", "--force"], "unlock", ["h: removed the deploy lock (held by x) (--force)"],
                     {"section": REPO_SECTION, "hosts": ["h"], "force": True}, id="unlock-force"),
        pytest.param(["bump", "minor", "--deps"], "bump", ("1.0.0", "1.1.0"), {"part": "minor", "deps": True}, id="bump-deps-minor"),
        pytest.param(["bump", "patch"], "bump", ("1.0.0", "1.0.1"), {"part": "patch", "deps": False}, id="bump-app-patch"),
        pytest.param(["lock"], "lock", "updated", {}, id="lock"),
        pytest.param(["ci"], "ci", CI_RESULT, {"section": REPO_SECTION, "tests": "unit"}, id="ci-defaults"),
        pytest.param(["ci", "--tests", "none"], "ci", CI_RESULT, {"section": REPO_SECTION, "tests": "none"}, id="ci-no-tests"),
        pytest.param(["registry"], "registry_up", "registry localhost:5000 is running", {"section": REPO_SECTION}, id="registry"),
        pytest.param(["deploy", "--lock-wait", "60"], "deploy", [DRY],
                     {"section": REPO_SECTION, "hosts": [], "version": None, "dry_run": False, "lock_wait": "60"}, id="deploy-lock-wait"),
        pytest.param(["prune", "--host", "a", "--keep", "2", "--dry-run"], "prune", [pruned()],
                     {"section": REPO_SECTION, "hosts": ["a"], "keep": "2", "dry_run": True}, id="prune-keep-dry-run"),
        pytest.param(["prune"], "prune", [pruned()], {"section": REPO_SECTION, "hosts": [], "keep": None, "dry_run": False},
                     id="prune-defaults"),
        pytest.param(["logs", "--host", "a", "--host", "b", "--service", "cron", "--since", "10m", "--tail", "5", "--follow"], "logs",
                     None, {"section": REPO_SECTION, "hosts": ["a", "b"], "service": "cron", "since": "10m", "tail": "5", "follow": True},
                     id="logs-all-flags"),
        pytest.param(["logs"], "logs", None,
                     {"section": REPO_SECTION, "hosts": [], "service": None, "since": None, "tail": None, "follow": False}, id="logs-defaults"),
        pytest.param(["run-job", "record-run", "--host", "a"], "run_job", 0, {"section": REPO_SECTION, "hosts": ["a"], "name": "record-run"},
                     id="run-job"),
    ],
)
def test_task_flags_reach_the_command(invoke: Run, recorder: Recorder, argv: list[str], name: str, result: Any,
                                      arguments: dict[str, Any]) -> None:
    recorder.fake(name, result)
    code, _, err = invoke(*argv)
    assert (code, err) == (0, "")
    assert recorder.calls == [(name, arguments)]


@pytest.mark.parametrize(
    ("argv", "name", "result", "out"),
    [
        pytest.param(["build-deps"], "build_deps", {"image": "r/i:t", "digest": "sha256:d", "built": False}, "r/i:t\nsha256:d\n", id="build-deps"),
        pytest.param(["rollback"], "rollback", [rolled_back("a"), rolled_back("b")],
                     f"a: now running {TAG}\nb: now running {TAG}\n", id="rollback-two-hosts"),
        pytest.param(["ci", "--tests", "all"], "ci", CI_RESULT,
                     "deps localhost:5000/production-control-deps:deps-1.0.0-abcdef123456 (unchanged)\n"
                     f"app  localhost:5000/production-control:{TAG}\n     sha256:app\n", id="ci"),
        pytest.param(["bump", "major"], "bump", ("1.4.2", "2.0.0"), "app version 1.4.2 -> 2.0.0\n", id="bump"),
        pytest.param(["bump", "patch", "--deps"], "bump", ("1.0.0", "1.0.1"), "deps version 1.0.0 -> 1.0.1\n", id="bump-deps"),
        pytest.param(["prune", "--keep", "1"], "prune", [pruned()],
                     "a: keep 1\n  kept      1.0.1-bbbbbbbbbbbb (running), 1.0.0-aaaaaaaaaaaa (rollback target)\n"
                     "  pruned    0.9.0-cccccccccccc\n  freed     2.0 MB measured (docker system df before/after), 2.1 MB predicted\n",
                     id="prune"),
        pytest.param(["unlock"], "unlock", ["a: removed a stale deploy lock", "b: no deploy lock was held"],
                     "a: removed a stale deploy lock\nb: no deploy lock was held\n", id="unlock"),
    ],
)
def test_task_output(invoke: Run, recorder: Recorder, argv: list[str], name: str, result: Any, out: str) -> None:
    recorder.fake(name, result)
    assert invoke(*argv) == (0, out, "")


# -- configuration precedence -------------------------------------------------------------------------------
def test_the_repository_invoke_yaml_is_the_deploy_section(invoke: Run, recorder: Recorder) -> None:
    recorder.fake("registry_up", "ok")
    invoke("registry")
    section = recorder.calls[0][1]["section"]
    assert section == REPO_SECTION
    assert section["registry"] == "localhost:5000"
    assert set(section) == set(DEFAULTS)  # invoke.yaml sets no key that load_config would refuse


def test_an_environment_variable_overrides_invoke_yaml(invoke: Run, recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOKE_DEPLOY_REGISTRY", "registry.example.com:5000")
    monkeypatch.setenv("INVOKE_DEPLOY_HTTP_PORT", "8080")
    recorder.fake("deploy", [DRY])
    invoke("deploy", "--dry-run")
    assert recorder.calls[0][1]["section"] == {**REPO_SECTION, "registry": "registry.example.com:5000", "http_port": 8080}


@pytest.mark.parametrize(
    ("yaml_registry", "env_registry", "expected"),
    [
        pytest.param(None, None, "localhost:5000", id="collection-default"),
        pytest.param("yaml.example.com:5000", None, "yaml.example.com:5000", id="invoke-yaml-over-default"),
        pytest.param("yaml.example.com:5000", "env.example.com", "env.example.com", id="env-over-invoke-yaml"),
        pytest.param(None, "env.example.com", "env.example.com", id="env-over-default"),
    ],
)
def test_config_precedence(invoke: Run, recorder: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                           yaml_registry: str | None, env_registry: str | None, expected: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(REPO_ROOT / "tasks", project / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # the delivery package, as for a project that installs it
    if yaml_registry:
        (project / "invoke.yaml").write_text(f"deploy:\n  registry: {yaml_registry}\n")
    if env_registry:
        monkeypatch.setenv("INVOKE_DEPLOY_REGISTRY", env_registry)
    recorder.fake("registry_up", "ok")
    assert invoke("registry", cwd=project) == (0, "ok\n", "")
    assert recorder.calls[0][1]["section"]["registry"] == expected


@pytest.mark.parametrize(
    ("variable", "value", "key", "loaded"),
    [
        pytest.param("INVOKE_DEPLOY_HOSTS", "ssh://deploy@plant-a,prod-2", "hosts", ("ssh://deploy@plant-a", "prod-2"), id="hosts-list"),
        pytest.param("INVOKE_DEPLOY_HEALTH_TIMEOUT", "2.5", "health_timeout", 2.5, id="health-timeout-float"),
        pytest.param("INVOKE_DEPLOY_MONITOR", "0", "monitor", 0.0, id="watch-window-off"),
        pytest.param("INVOKE_DEPLOY_WATCH_MIN_REQUESTS", "20", "watch_min_requests", 20, id="watch-min-requests"),
        pytest.param("INVOKE_DEPLOY_PROXY_IMAGE", "registry.example.com/haproxy:3.0", "proxy_image",
                     "registry.example.com/haproxy:3.0", id="proxy-image-default-none"),
    ],
)
def test_documented_env_overrides_reach_the_config(invoke: Run, recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
                                                   variable: str, value: str, key: str, loaded: Any) -> None:
    monkeypatch.setenv(variable, value)
    recorder.fake("status", [])
    assert invoke("status")[0] == 0
    assert getattr(load_config(recorder.calls[0][1]["section"]), key) == loaded


# -- errors --------------------------------------------------------------------------------------------------
def test_a_delivery_error_is_one_line_and_exit_1(invoke: Run, recorder: Recorder) -> None:
    message = "registry localhost:5000 is unreachable (connection refused): start it (`invoke registry`)"
    recorder.fake("build_app", raises=DeliveryError(message))
    assert invoke("build-app") == (1, "", f"error: {message}\n")


def test_ci_refuses_an_unknown_tests_choice_before_running_anything(invoke: Run, recorder: Recorder) -> None:
    recorder.fake("ci", CI_RESULT)
    assert invoke("ci", "--tests", "integration") == (1, "", "error: --tests 'integration': use unit, all or none\n")
    assert recorder.calls == []


def test_a_failed_deploy_with_json_prints_the_report_then_the_error(invoke: Run, recorder: Recorder) -> None:
    report = {**FULL_REPORT, "healthy": False, "rolled_back": True, "error": "it exited with code 3"}
    recorder.fake("deploy", raises=DeployFailed("it exited with code 3", [report]))
    code, out, err = invoke("deploy", "--json")
    assert (code, err) == (1, "error: it exited with code 3\n")
    assert json.loads(out) == report


def test_a_failed_deploy_without_json_prints_only_the_error(invoke: Run, recorder: Recorder) -> None:
    recorder.fake("deploy", raises=DeployFailed("boom on b", [FULL_REPORT, FULL_REPORT]))
    assert invoke("deploy") == (1, "", "error: boom on b\n")


def test_other_exceptions_are_not_swallowed(invoke: Run, recorder: Recorder) -> None:
    recorder.fake("status", raises=RuntimeError("programming error"))
    with pytest.raises(RuntimeError, match="programming error"):
        invoke("status")


# -- --list ----------------------------------------------------------------------------------------------------
def test_list_shows_every_task_with_its_first_docstring_line(invoke: Run) -> None:
    import tasks

    code, out, _ = invoke("--list")
    assert code == 0
    listed = {line.split()[0] for line in out.splitlines()[2:] if line.startswith("  ") and not line.startswith("   ")}
    assert listed == set(tasks.ns.task_names)
    assert {"build-app", "build-deps", "bump", "ci", "deploy", "lock", "registry", "rollback", "status", "unlock"} <= listed
    flat = " ".join(out.split())  # --list wraps long help lines
    for name, task in tasks.ns.tasks.items():
        first_line = task.body.__doc__.strip().splitlines()[0]
        assert f"{name} {first_line}" in flat


# -- what the tasks print ---------------------------------------------------------------------------------------------
def test_format_report_dry_run() -> None:
    assert text.format_report(DRY) == (
        f"a: localhost:5000/production-control:{TAG} would pull 2/9 layers, 1.2 MB of 60.0 MB (overlay2 store)"
    )


def test_format_report_healthy() -> None:
    assert text.format_report(deployed()) == "\n".join([
        "host            local (containerd image store)",
        f"image           localhost:5000/production-control:{TAG}",
        "digest          sha256:abc",
        "previous        1.0.0-0123456789ab",
        "layers pulled   1/9 predicted, 1 measured (engine's pull progress)",
        "bytes pulled    4.1 kB of 60.0 MB predicted, 3.6 kB measured (engine's pull progress, without the config)",
        "pull time       1.50s",
        "healthy after   3.25s (slot green)",
        "switch          0.12s",
        "watch window    10s: 480 requests, 0 failed",
        "drain           0.50s",
        "deploy time     16.4s",
    ])


def test_format_report_failed_with_the_previous_release_still_serving() -> None:
    report = deployed(healthy=False, rolled_back=True, error="its healthcheck failed",
                      switch_seconds=None, drain_seconds=None, monitor=None, seconds=30.0)
    lines = text.format_report(report).splitlines()
    assert lines[-3:] == ["healthy         no (its healthcheck failed)", "still serving   1.0.0-0123456789ab", "deploy time     30.0s"]


def test_format_report_switched_back_by_the_watch_window() -> None:
    report = deployed(healthy=False, rolled_back=True, error="80 of 480 requests failed",
                      monitor={"seconds": 10.0, "requests": 480, "errors": 80, "error_rate": 0.17, "switched_back": True})
    assert "watch window    10s: 480 requests, 80 failed (switched back)" in text.format_report(report).splitlines()


def test_format_report_puts_the_cron_outcome_on_its_own_line_after_a_final_web_switch() -> None:
    failed = "failed: cron of 1.0.1-0123456789ab failed on local: its healthcheck failed; the web app runs 1.0.1-0123456789ab"
    report = deployed(healthy=False, web_live=True, error=failed.removeprefix("failed: "), cron=failed)
    lines = text.format_report(report).splitlines()
    assert "healthy after   3.25s (slot green)" in lines and f"cron            {failed}" in lines
    assert not any(line.startswith("still serving") for line in lines)
    assert "cron            runs 1.0.1" in text.format_report(deployed(cron="runs 1.0.1"))


def test_format_status_running_with_history_and_lock() -> None:
    entry = {
        "host": "plant-a",
        "engine": "26.1.5",
        "image_store": "overlay2",
        "running": {"tag": TAG, "state": "running", "health": "healthy", "started_at": "2026-11-27T17:58:38+00:00",
                    "digest": "sha256:abc"},
        "lock": "held by ci@builder pid 42 since 2026-11-27T17:58:00Z",
        "history": [
            {"time": "20261127T175838316172Z", "kind": "deploy", "tag": TAG},
            {"time": "20261126T090000000000Z", "kind": "rollback", "tag": "1.0.0-0123456789ab"},
        ],
    }
    assert text.format_status(HostStatus(entry)) == "\n".join([
        "plant-a  engine 26.1.5, overlay2 image store",
        f"  live      {TAG}  running/healthy  single container, since 2026-11-27T17:58:38+00:00",
        "  digest    sha256:abc",
        "  cron      not running",
        "  proxy     not running",
        "  lock      held by ci@builder pid 42 since 2026-11-27T17:58:00Z",
        "  history (newest first):",
        f"    20261127T175838316172Z  deploy   {TAG}",
        "    20261126T090000000000Z  rollback 1.0.0-0123456789ab",
    ])


def test_format_status_of_a_fresh_host() -> None:
    entry = {"host": "local", "engine": "28.0.1", "image_store": "containerd", "running": None, "lock": None, "history": []}
    assert text.format_status(HostStatus(entry)) == "\n".join([
        "local  engine 28.0.1, containerd image store",
        "  live      nothing (first deploy: `invoke deploy`)",
        "  cron      not running",
        "  proxy     not running",
        "  history (newest first):",
        "    (none)",
    ])


def test_format_status_shows_at_most_ten_history_entries() -> None:
    history = [{"time": f"2026112{i}T000000000000Z", "kind": "deploy", "tag": TAG} for i in range(12)]
    entry = {"host": "local", "engine": "28", "image_store": "overlay2", "running": None, "lock": None, "history": history}
    assert len(text.format_status(HostStatus(entry)).splitlines()) == 5 + 10


def test_format_status_shows_the_releases_the_host_keeps() -> None:
    entry = {"host": "plant-a", "engine": "26.1.5", "image_store": "overlay2", "running": None, "lock": None,
             "history": [], "releases": {"count": 3, "keep_releases": 5, "bytes": 254_800_000}}
    assert "  releases  3 on the host (keep_releases 5), 254.8 MB of images" in text.format_status(HostStatus(entry)).splitlines()


def test_format_prune_dry_run_and_nothing_to_do() -> None:
    dry = pruned(dry_run=True, freed_bytes=None, errors=[])
    assert text.format_prune(dry).splitlines()[-1] == "  would free 2.1 MB predicted (dry run: nothing removed)"
    idle = pruned(pruned=[], freed_bytes=None, predicted_freed_bytes=0)
    assert text.format_prune(idle).splitlines()[-2:] == ["  pruned    nothing", "  freed     0 B (nothing to remove)"]
    failed = pruned(errors=["r:1: image is being used by a container"])
    assert text.format_prune(failed).splitlines()[-1] == "  not removed: r:1: image is being used by a container"


# -- doctor ----------------------------------------------------------------------------------------------------
ENGINE_BUILDER = {
    "name": "default", "driver": "docker", "status": "running", "buildkit": "bundled with Engine 26.1.5",
    "engine": "26.1.5", "image_store": "overlay2", "path": "engine", "reproducible": False,
    "loses": "not byte-reproducible", "to_reproducible": "enable the containerd image store",
}


def test_doctor_json_is_the_command_result(invoke: Run, recorder: Recorder) -> None:
    result = {"builder": ENGINE_BUILDER, "registry": "localhost:5000"}
    recorder.fake("doctor", result)
    code, out, err = invoke("doctor", "--json")
    assert (code, err) == (0, "")
    assert recorder.calls == [("doctor", {"section": REPO_SECTION})]
    assert json.loads(out) == result


def test_format_report_says_a_quiet_watch_window_passed_on_health_checks_only() -> None:
    note = "no traffic in the watch window: passed on the proxy's health checks only"
    report = deployed(monitor={"seconds": 10.0, "requests": 0, "errors": 0, "error_rate": 0.0, "switched_back": False, "note": note})
    assert f"watch window    10s: 0 requests, 0 failed ({note})" in text.format_report(report).splitlines()

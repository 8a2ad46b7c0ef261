"""The production image on a real engine: build, configuration, processes, signals, cache, content.

Order matters for speed only: the cron test comes last so that the shared container,
started by the first test that uses it, has usually seen a minute boundary by then.
"""

import re
import time
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from dockerbed import worktree
from tests.integration.support.appcontainer import AppContainer, Process, processes, read_file, wait_for_exit, wait_for_healthz, wait_until
from tests.integration.support.buildlog import BuildStep, build_steps
from tests.integration.support.savedimage import layer_files
from tests.integration.support.testbed import REPO_ROOT, BuiltImages, Testbed, build_log, build_target

pytestmark = pytest.mark.docker

APP_UID = 10001
STOP_GRACE = 10  # compose's stop_grace_period
CRON_DEADLINE = 90.0  # cron fires on the minute; one full minute plus start-up
EXIT_DEADLINE = 15.0
# What the app needs in /app, and nothing else (no .git, .env, tests, caches, venvs).
APP_DIR_ENTRIES = {"pyproject.toml", "production_control"}
FORBIDDEN_NAMES = {".git", ".env", "tests", "__pycache__", ".venv"}
ACCESS_LINE = re.compile(r'"GET /healthz HTTP/1\.[01]" 200')
FROM_LINE = re.compile(r"^FROM\s+\S+\s+AS\s+(?P<stage>[\w.-]+)\s*$", re.IGNORECASE | re.MULTILINE)

AppFactory = Callable[..., AppContainer]


def test_targets_build_and_runtime_is_configured_for_compose(images: BuiltImages) -> None:
    runtime = images.runtime.config
    assert runtime.entrypoint == ["docker-entrypoint.sh"]
    assert runtime.cmd == ["all"]
    assert "8000/tcp" in (runtime.exposed_ports or {})
    assert f"PRODUCTION_CONTROL_DEPS_TAG={images.deps_tag}" in (runtime.env or [])
    assert f"PRODUCTION_CONTROL_DEPS_TAG={images.deps_tag}" in (images.deps.config.env or [])
    deps_layers = images.deps.root_fs.layers
    assert images.runtime.root_fs.layers[: len(deps_layers)] == deps_layers, "runtime is not FROM the deps image"
    assert len(images.runtime.root_fs.layers) > len(deps_layers), "runtime adds no layer of code"


def test_healthz_reports_app_version_and_deps_tag(
    docker: DockerClient, shared_app: AppContainer, images: BuiltImages, app_version: str
) -> None:
    health = wait_for_healthz(docker, shared_app)
    assert health["status"] == "ok"
    assert health["version"] == app_version
    assert health["deps"] == images.deps_tag


def test_web_process_is_not_root(docker: DockerClient, shared_app: AppContainer) -> None:
    wait_for_healthz(docker, shared_app)
    listed = processes(docker, shared_app.container)
    web = [p for p in listed if p.is_web_app]
    assert len(web) == 1, f"expected one uvicorn process, found: {listed}"
    assert all(uid != 0 for uid in web[0].uids), f"uvicorn runs with a root uid: {web[0]}"
    assert web[0].uids == (APP_UID,) * 4
    assert int(web[0].cap_eff, 16) == 0, f"uvicorn keeps capabilities: {web[0]}"


def test_sigterm_stops_the_container_cleanly_within_grace_period(
    docker: DockerClient, app_factory: AppFactory
) -> None:
    app = app_factory()
    wait_for_healthz(docker, app)
    started = time.monotonic()
    docker.container.stop(app.container, time=STOP_GRACE)
    elapsed = time.monotonic() - started
    state = docker.container.inspect(app.container).state
    logs = docker.container.logs(app.container)
    assert elapsed < STOP_GRACE, f"stop took {elapsed:.1f}s (SIGKILL after {STOP_GRACE}s)\n{logs}"
    assert state.exit_code == 0, f"exit code {state.exit_code} after SIGTERM\n{logs}"


def test_container_exits_nonzero_when_the_web_process_dies(
    docker: DockerClient, app_factory: AppFactory
) -> None:
    app = app_factory()
    wait_for_healthz(docker, app)
    (web,) = [p for p in processes(docker, app.container) if p.is_web_app]
    kill = f"import os, signal; os.kill({web.pid}, signal.SIGKILL)"
    docker.container.execute(app.container, ["python3", "-c", kill])
    exit_code = wait_for_exit(docker, app.container, EXIT_DEADLINE)
    assert exit_code != 0, f"the container exited 0 after uvicorn died\n{docker.container.logs(app.container)}"


def test_roles_start_only_their_own_process(docker: DockerClient, app_factory: AppFactory) -> None:
    web_app = app_factory(role="web")
    cron_app = app_factory(role="cron")

    wait_for_healthz(docker, web_app)
    web_role = processes(docker, web_app.container)
    assert not [p for p in web_role if p.is_cron], f"the web role runs cron: {web_role}"

    def with_cron() -> list[Process] | None:
        listed = processes(docker, cron_app.container)
        return listed if any(p.is_cron for p in listed) else None

    cron_role = wait_until(
        with_cron, 10.0, "cron running in the cron role", lambda: docker.container.logs(cron_app.container)
    )
    assert not [p for p in cron_role if p.is_web_app], f"the cron role runs uvicorn: {cron_role}"
    assert docker.container.inspect(cron_app.container).state.running


def test_image_holds_no_git_env_tests_or_caches(docker: DockerClient, testbed: Testbed, tmp_path: Path) -> None:
    marker = f"leak-marker-{uuid.uuid4().hex}"
    context = worktree.copy(REPO_ROOT, tmp_path / "repo")
    (context / ".env").write_text(f"SECRET_TOKEN={marker}\n")
    (context / ".git").mkdir()
    (context / ".git" / "config").write_text(f"[remote]\n\turl = https://{marker}@example.invalid/repo.git\n")
    (context / "tests" / "leak.txt").write_text(marker)
    (context / "production_control" / "__pycache__").mkdir(exist_ok=True)
    (context / "production_control" / "__pycache__" / "web.cpython-311.pyc").write_text(marker)
    (context / ".venv").mkdir()
    (context / ".venv" / "pyvenv.cfg").write_text(f"home = /{marker}\n")

    tag = f"pc-test-leakcheck:{uuid.uuid4().hex[:12]}"
    build_target(docker, testbed, context, target="runtime", tag=tag)
    saved = tmp_path / "image.tar"
    try:
        docker.image.save(tag, output=saved)
    finally:
        docker.image.remove(tag, force=True)

    leaked: list[str] = []
    forbidden: list[str] = []
    app_entries: set[str] = set()
    for entry in layer_files(saved):
        if marker.encode() in entry.content:
            leaked.append(f"{entry.blob}:{entry.path or '(the blob itself)'}")
        if entry.path.startswith("app/"):
            parts = Path(entry.path).parts
            if FORBIDDEN_NAMES & set(parts):
                forbidden.append(entry.path)
            if len(parts) > 1:
                app_entries.add(parts[1])
    assert not leaked, f"the marker from .env, .git, tests/, .venv or __pycache__ is in the image: {leaked}"
    assert not forbidden, f"repository clutter is in /app: {forbidden}"
    assert app_entries == APP_DIR_ENTRIES, "/app holds more (or less) than the app needs"


def test_code_only_change_rebuilds_only_the_runtime_code_layers(
    docker: DockerClient, testbed: Testbed, tmp_path: Path
) -> None:
    """Built as a release builds: the deps target, then runtime FROM that deps image."""
    context = worktree.copy(REPO_ROOT, tmp_path / "repo")
    stages_below = lower_stages(context)
    run_id = uuid.uuid4().hex[:12]
    refs = {name: f"pc-test-rebuild-{name}:{run_id}" for name in ("deps", "deps-again", "before", "code", "version")}
    from_deps = {"DEPS_IMAGE": refs["deps"]}
    try:
        deps = build_target(docker, testbed, context, target="deps", tag=refs["deps"]).root_fs.layers
        before = build_target(
            docker, testbed, context, target="runtime", tag=refs["before"], build_args=from_deps
        ).root_fs.layers

        with (context / "production_control" / "web.py").open("a") as f:
            f.write(f"\n# code-only change {run_id}\n")
        assert_deps_come_from_cache(docker, testbed, context, refs["deps-again"], stages_below)
        code_steps = build_steps(
            build_log(docker, testbed, context, target="runtime", tag=refs["code"], build_args=from_deps)
        )
        assert_only_runtime_copies_ran(code_steps, changed="production_control")
        code = docker.image.inspect(refs["code"]).root_fs.layers

        new_version = bump_project_version(context / "pyproject.toml", local_label=run_id)
        assert_deps_come_from_cache(docker, testbed, context, refs["deps-again"], stages_below)
        version_steps = build_steps(
            build_log(docker, testbed, context, target="runtime", tag=refs["version"], build_args=from_deps)
        )
        assert_only_runtime_copies_ran(version_steps, changed="pyproject.toml")
        version = docker.image.inspect(refs["version"]).root_fs.layers
        reported = docker.container.run(
            refs["version"],
            ["python3", "-c", "import production_control; print(production_control.__version__)"],
            remove=True,
            networks=["none"],
        )
        assert str(reported).strip() == new_version
    finally:
        docker.image.remove([ref for ref in refs.values() if docker.image.exists(ref)], force=True)

    for name, layers in {"before": before, "code": code, "version": version}.items():
        assert layers[: len(deps)] == deps, f"the {name} image does not share every layer of the deps image"
    assert changed_layers(before, code) == [len(code) - 1], "a code change must replace only the top (code) layer"
    version_changed = changed_layers(code, version)
    assert version_changed and min(version_changed) >= len(deps), "a version bump must replace only code layers"


def test_overlapping_runs_of_a_job_do_not_pile_up(docker: DockerClient, shared_app: AppContainer) -> None:
    """While a run of record-run holds its lock, a second run is skipped (and says so), not queued."""
    container = shared_app.container
    wait_for_healthz(docker, shared_app)
    lock = "/run/production-control/locks/record-run.lock"
    holder = docker.container.execute(container, ["flock", lock, "sleep", "6"], user="app", detach=True)
    try:
        time.sleep(0.5)
        before = shared_app.get("/runs").json()["total"]
        started = time.monotonic()
        docker.container.execute(container, ["/usr/local/bin/docker-entrypoint.sh", "job", "record-run"])
        assert time.monotonic() - started < 3, "the second run waited for the lock instead of skipping"
        assert shared_app.get("/runs").json()["total"] == before, "the overlapping run wrote a row"
        assert "job record-run skipped: the previous run is still going" in read_file(docker, container, "/var/log/cron.log")
    finally:
        del holder


def test_cron_job_runs_with_the_container_environment(
    docker: DockerClient, shared_app: AppContainer, app_version: str
) -> None:
    container = shared_app.container
    wait_for_healthz(docker, shared_app)

    def run_of_this_site() -> dict[str, object] | None:
        runs = shared_app.get("/runs").json()["runs"]
        return next((run for run in runs if run["site_name"] == shared_app.site_name), None)

    run = wait_until(
        run_of_this_site, CRON_DEADLINE, f"a job run with site_name={shared_app.site_name} in /runs",
        lambda: f"cron.log:\n{read_file(docker, container, '/var/log/cron.log')}\n{docker.container.logs(container)}",
    )
    assert run["job"] == "record-run"
    assert run["status"] == "ok"
    assert run["app_version"] == app_version

    job_line = f"job=record-run status=ok site={shared_app.site_name}"
    assert job_line in read_file(docker, container, "/var/log/cron.log")
    wait_until(
        lambda: job_line in docker.container.logs(container), 5.0, "the job line in `docker logs`",
        lambda: docker.container.logs(container),
    )
    web_log = read_file(docker, container, "/var/log/webapp.log")
    assert ACCESS_LINE.search(web_log), f"no access line for /healthz in webapp.log:\n{web_log}"


def lower_stages(context: Path) -> list[str]:
    """The Dockerfile's named stages other than runtime: os, the venv stages, deps."""
    stages = FROM_LINE.findall((context / "Dockerfile").read_text())
    assert "runtime" in stages and "deps" in stages, f"unexpected Dockerfile stages: {stages}"
    return [stage for stage in stages if stage != "runtime"]


def assert_deps_come_from_cache(
    docker: DockerClient, testbed: Testbed, context: Path, ref: str, stages_below: list[str]
) -> None:
    """Rebuild the deps target: every step of every stage below runtime must be CACHED."""
    steps = build_steps(build_log(docker, testbed, context, target="deps", tag=ref))
    listing = "\n".join(map(str, steps))
    for stage in stages_below:
        stage_steps = [s for s in steps if s.stage == stage and not s.is_from]
        assert stage_steps, f"stage {stage} is not in the deps build log:\n{listing}"
        assert all(s.cached for s in stage_steps), f"stage {stage} did not come from the cache:\n{listing}"


def assert_only_runtime_copies_ran(steps: list[BuildStep], changed: str) -> None:
    """What a runtime build ran is runtime COPYs: `changed`'s and those above, not the process wiring."""
    listing = "\n".join(map(str, steps))
    ran = [s for s in steps if s.ran]
    assert ran, f"nothing was rebuilt after changing {changed}:\n{listing}"
    assert all(s.stage == "runtime" and s.instruction.startswith("COPY ") for s in ran), listing
    assert any(f" {changed} " in s.instruction for s in ran), f"the COPY of {changed} did not run:\n{listing}"
    assert not any("docker-entrypoint.sh" in s.instruction or "crontab" in s.instruction for s in ran), listing


def bump_project_version(pyproject: Path, local_label: str) -> str:
    """Change `[project].version` (only that one) to a version never built before; return it."""
    text = pyproject.read_text()
    old = tomllib.loads(text)["project"]["version"]
    new = f"{old}+{local_label}"
    section = re.search(r"(?ms)^\[project\]\n.*?(?=^\[)", text)
    assert section, "no [project] table in pyproject.toml"
    body = section.group(0).replace(f'version = "{old}"', f'version = "{new}"', 1)
    pyproject.write_text(text[: section.start()] + body + text[section.end() :])
    assert tomllib.loads(pyproject.read_text())["project"]["version"] == new
    return new


def changed_layers(before: list[str], after: list[str]) -> list[int]:
    """Indexes of the layers that differ between two images of the same length."""
    assert len(before) == len(after), f"layer count changed: {len(before)} -> {len(after)}"
    return [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]

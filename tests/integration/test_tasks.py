"""The invoke tasks as a user runs them: build-deps, build-app, deploy, rollback, status, bump.

Every command is the `invoke` CLI, run in a git clone of the repository that holds its
current work tree (uncommitted changes included, then committed). The deploys go to the
test bed's server engine under a compose project and HTTP port of this module only, removed
at the end with everything they left there.

The deploy story is a chain of module-scoped fixtures, each run once, in this order:
build-deps -> build-app (release 1) -> deploy 1 -> code-only release 2 (dry run, deploy,
registry log) -> release 3 whose /healthz fails (rolled back to 2) -> rollback (to 1) -> status.
A test asks for the step it checks and gets all the steps before it, so `-k` picks any test;
the tests also appear in that order, and -x stops at the first broken step. The last build
before release 2 (the dirty-tree test) has jobs.py as release 1 has it, so release 2 is a
same-size edit of the context built just before (a stale build context would show). The bump
and error tests need no deploy state.
"""

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.registry.client import LOCAL_REGISTRY_STATE
from delivery.release.pullreport import served_blob_bytes
from tests.integration.support.tasks_helpers import (
    APP_REPOSITORY,
    DEPS_REPOSITORY,
    ENGINE_USER_AGENT,
    REGISTRY,
    Clone,
    ReleaseBlobs,
    TaskRun,
    accesses_between,
    app_container,
    blob_gets,
    command_line,
    free_port,
    get_json,
    listening_pids,
    log_size,
    only_an_error_line,
    pinned_tag,
    project_filter,
    release_blobs,
    remove_project,
    remove_tree,
    stop_process,
    succeeded,
)
from tests.integration.support.testbed import START_HINT, Testbed

pytestmark = pytest.mark.docker

# A healthy release answers in about 2 s; this only bounds a hang.
HEALTH_TIMEOUT = "60"
# A release whose /healthz answers 500 never becomes healthy; compose would call it
# unhealthy after start_period (10 s) plus 3 failed probes 5 s apart; the timeout bounds it.
FAILING_HEALTH_TIMEOUT = "20"
DEPS_BUILD_TIMEOUT = 1200  # a real deps build installs the locked packages from PyPI
NO_OP_SECONDS = 15  # a build-deps that finds its tag in the registry only asks the registry

SEMVER = r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
DEPS_IMAGE = re.compile(rf"{re.escape(REGISTRY)}/{DEPS_REPOSITORY}:deps-(?P<version>{SEMVER})-[0-9a-f]{{12}}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
REPORT_KEYS = {"image", "digest", "predicted_layers", "total_layers", "predicted_bytes", "pull_seconds", "healthy", "rolled_back"}

# The code-only change: one line of jobs.py, replaced by one of the same length.
CODE_FILE = "production_control/jobs.py"
FIRST_MARKER, CODE_MARKER = uuid.uuid4().hex, uuid.uuid4().hex


def marker_line(marker: str) -> str:
    return f"# release marker {marker}\n"


HEALTHZ_OK = '    db.count_runs(conn)\n    return {"status": "ok"'
HEALTHZ_500 = '    return JSONResponse({"status": "broken"}, status_code=500)\n    return {"status": "ok"'


@dataclass
class Site:
    """Where this module deploys: the server engine, a compose project and port of its own."""

    host: str
    project: str
    port: int
    server: DockerClient
    release_tags: list[str] = field(default_factory=list)  # pulled onto the server, untagged at the end


@dataclass(frozen=True)
class Release:
    """An app image build-app pushed: its tag, manifest digest, commit, and blobs in the registry."""

    tag: str
    digest: str
    commit: str
    blobs: ReleaseBlobs


@dataclass(frozen=True)
class CodeRelease:
    release: Release
    dry_run: TaskRun
    deploy: TaskRun
    log_window: tuple[int, int]  # registry access log sizes just before and after the deploy


@dataclass(frozen=True)
class FailedDeploy:
    release: Release
    deploy: TaskRun
    runs_before: int  # GET /runs total just before the deploy


# -- the test bed and the clone --------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(testbed: Testbed) -> DockerClient:
    client = DockerClient(host=testbed.server_host)
    try:
        client.system.info()
    except (DockerException, OSError) as error:
        pytest.fail(f"the server engine {testbed.server_host} is not reachable ({error}): {START_HINT}", pytrace=False)
    return client


@pytest.fixture(scope="module")
def registry_log(testbed: Testbed) -> Path:
    try:
        httpx.get(f"http://{testbed.registry}/v2/", timeout=5).raise_for_status()
    except httpx.HTTPError as error:
        pytest.fail(f"the registry {testbed.registry} does not answer ({error}): {START_HINT}", pytrace=False)
    if not testbed.registry_log.is_file():
        pytest.fail(f"the registry access log {testbed.registry_log} is missing: {START_HINT}", pytrace=False)
    return testbed.registry_log


@pytest.fixture(scope="module")
def site(testbed: Testbed, server: DockerClient) -> Iterator[Site]:
    deployed = Site(testbed.server_host, f"pctest-{uuid.uuid4().hex[:10]}", free_port(), server)
    yield deployed
    remove_project(server, deployed.project, deployed.release_tags)
    leftovers = server.container.list(all=True, filters=project_filter(deployed.project))
    assert not leftovers, f"project {deployed.project} still has containers: {[c.name for c in leftovers]}"


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory, testbed: Testbed, docker: DockerClient, registry_log: Path, site: Site) -> Clone:
    """The repository's work tree, committed in a clone; its tasks deploy to this module's site."""
    repo = Clone.create(tmp_path_factory.mktemp("tasks") / "repo", testbed)
    repo.env.update(
        INVOKE_DEPLOY_COMPOSE_PROJECT=site.project,
        INVOKE_DEPLOY_HTTP_PORT=str(site.port),
        INVOKE_DEPLOY_HEALTH_TIMEOUT=HEALTH_TIMEOUT,
    )
    return repo




def build_release(clone: Clone, site: Site) -> Release:
    result = succeeded(clone.invoke("build-app", "--json")).json()
    site.release_tags.append(result["tag"])
    return Release(result["tag"], result["digest"], clone.head(), release_blobs(REGISTRY, APP_REPOSITORY, result["tag"]))


def deploy(clone: Clone, site: Site, *flags: str, env: dict[str, str] | None = None) -> TaskRun:
    return clone.invoke("deploy", "--host", site.host, "--json", *flags, env=env)




# -- the chain of steps ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deps_build(clone: Clone) -> TaskRun:
    """The module's (so the session's) one real build-deps: builds and pushes the deps image unless
    the registry has it (its tag is a hash of its inputs, the same for every clone of this tree)."""
    return succeeded(clone.invoke("build-deps", timeout=DEPS_BUILD_TIMEOUT))


@pytest.fixture(scope="module")
def first_release(clone: Clone, site: Site, deps_build: TaskRun) -> Release:
    """Release 1 also changes the crontab, so the builder caches that layer after this commit
    (which must not make the next, code-only release ship it again), and marks jobs.py."""
    with (clone.path / "crontab").open("a") as f:
        f.write(f"# release 1 also touches the process wiring: {uuid.uuid4().hex}\n")
    with (clone.path / CODE_FILE).open("a") as f:
        f.write(marker_line(FIRST_MARKER))
    clone.commit("release 1: a crontab line and a marker in jobs.py")
    return build_release(clone, site)


@pytest.fixture(scope="module")
def first_deploy(clone: Clone, site: Site, first_release: Release) -> TaskRun:
    return succeeded(deploy(clone, site))


@pytest.fixture(scope="module")
def code_release(clone: Clone, site: Site, registry_log: Path, first_deploy: TaskRun) -> CodeRelease:
    """A release that changes one line of Python, keeping the file's size: predicted (dry run), then deployed."""
    clone.replace_text(CODE_FILE, marker_line(FIRST_MARKER), marker_line(CODE_MARKER))
    clone.commit("a code-only change")
    release = build_release(clone, site)
    dry_run = succeeded(deploy(clone, site, "--dry-run"))
    before = log_size(registry_log)
    run = succeeded(deploy(clone, site))  # the pull's log lines are written before the health wait ends
    return CodeRelease(release, dry_run, run, (before, log_size(registry_log)))


@pytest.fixture(scope="module")
def failed_deploy(clone: Clone, site: Site, code_release: CodeRelease) -> FailedDeploy:
    """A release whose /healthz answers 500, deployed over the code release (which has a job run)."""
    site.server.container.execute(
        app_container(site.server, site.project, "cron"), ["docker-entrypoint.sh", "job", "record-run"], user="app"
    )
    runs_before = get_json(site.port, "/runs")["total"]
    clone.replace_text("production_control/web.py", HEALTHZ_OK, HEALTHZ_500)
    clone.commit("/healthz answers 500")
    release = build_release(clone, site)
    run = deploy(clone, site, env={"INVOKE_DEPLOY_HEALTH_TIMEOUT": FAILING_HEALTH_TIMEOUT})
    clone.reset_to(code_release.release.commit)  # later builds start from the last good commit
    return FailedDeploy(release, run, runs_before)


@pytest.fixture(scope="module")
def rollback(clone: Clone, site: Site, registry_log: Path, failed_deploy: FailedDeploy) -> tuple[TaskRun, tuple[int, int]]:
    before = log_size(registry_log)
    run = succeeded(clone.invoke("rollback", "--host", site.host, "--json"))
    return run, (before, log_size(registry_log))


@pytest.fixture(scope="module")
def status(clone: Clone, site: Site, rollback: tuple[TaskRun, tuple[int, int]]) -> dict[str, Any]:
    return succeeded(clone.invoke("status", "--host", site.host, "--json")).json()


# -- 1. build-deps ---------------------------------------------------------------------------------
def test_build_deps_runs_once_and_is_then_a_no_op(clone: Clone, deps_build: TaskRun) -> None:
    image, digest = deps_build.stdout.split()
    match = DEPS_IMAGE.fullmatch(image)
    assert match, f"not a deps image reference: {image!r}\n{deps_build.describe()}"
    assert match["version"] == clone.deps_version
    assert DIGEST.fullmatch(digest), deps_build.describe()
    assert "building deps image" in deps_build.stderr or "already in the registry" in deps_build.stderr

    again = succeeded(clone.invoke("build-deps", "--json"))
    assert "already in the registry" in again.stderr, again.describe()
    result = again.json()
    assert result.pop("base").startswith(f"{clone.testbed.python_image}@sha256:")  # the base, by digest (issue 11)
    assert result == {"image": image, "digest": digest, "built": False}
    assert again.seconds < NO_OP_SECONDS, f"a no-op build-deps took {again.seconds:.1f}s"


# -- 2. build-app ----------------------------------------------------------------------------------
def test_build_app_tags_the_commit(clone: Clone, first_release: Release, deps_build: TaskRun) -> None:
    assert first_release.tag == f"{clone.app_version}-{first_release.commit[:12]}"
    assert first_release.digest == first_release.blobs.digest, "build-app reported another digest than the registry holds"
    # The runtime image is FROM the deps image: all its layers come first.
    deps = release_blobs(REGISTRY, DEPS_REPOSITORY, deps_build.stdout.split()[0].rsplit(":", 1)[1])
    assert first_release.blobs.layers[: len(deps.layers)] == deps.layers


def test_build_app_refuses_a_lock_whose_deps_image_is_not_built(clone: Clone, first_release: Release) -> None:
    try:
        with (clone.path / "requirements.lock").open("a") as f:
            f.write(f"# a lock change nobody built: {uuid.uuid4().hex}\n")
        run = clone.invoke("build-app")
    finally:
        clone.discard_changes()
    line = only_an_error_line(run)
    assert "`invoke build-deps`" in line
    assert f"{DEPS_REPOSITORY}:deps-{clone.deps_version}-" in line
    assert run.stdout == ""


# -- 3. deploy -------------------------------------------------------------------------------------
def test_deploy_reports_and_runs_the_release(clone: Clone, site: Site, first_release: Release, first_deploy: TaskRun) -> None:
    report = first_deploy.json()
    assert REPORT_KEYS <= report.keys(), f"missing keys {REPORT_KEYS - report.keys()}"
    assert report["image"] == f"{REGISTRY}/{APP_REPOSITORY}:{first_release.tag}"
    assert report["digest"] == first_release.digest
    assert (report["healthy"], report["rolled_back"], report["error"]) == (True, False, None)
    assert report["total_layers"] == len(first_release.blobs.layers)
    assert report["total_bytes"] == first_release.blobs.config[1] + sum(size for _, size in first_release.blobs.layers)
    assert 0 <= report["predicted_layers"] <= report["total_layers"]
    assert 0 <= report["predicted_bytes"] <= report["total_bytes"]
    assert report["pull_seconds"] >= 0

    health = get_json(site.port, "/healthz")
    assert (health["status"], health["version"], health["commit"]) == ("ok", clone.app_version, first_release.commit)
    container = app_container(site.server, site.project)
    assert container.config.image.startswith(f"{report['image']}@sha256:"), "the release was not started by its digest"
    assert pinned_tag(site.server, container) == first_release.tag
    repo_digests = site.server.image.inspect(container.image).repo_digests or []
    assert f"{REGISTRY}/{APP_REPOSITORY}@{first_release.digest}" in repo_digests


# -- 2 (continued). build-app of a dirty tree ------------------------------------------------------
def test_build_app_tags_a_dirty_tree_as_dirty(clone: Clone, first_release: Release) -> None:
    # Run right before the code-only release: an untracked file makes the tree dirty and leaves
    # jobs.py as release 1 has it, so release 2 is a same-size edit of the last context built.
    try:
        (clone.path / "notes-not-committed.txt").write_text("work in progress\n")
        run = succeeded(clone.invoke("build-app", "--json"))
    finally:
        clone.discard_changes()
    tag = run.json()["tag"]
    assert re.fullmatch(rf"{re.escape(clone.app_version)}-{clone.head()[:12]}-dirty-[0-9a-f]{{8}}", tag), run.describe()
    assert tag != first_release.tag
    assert "uncommitted changes" in run.stderr


# -- 4. a code-only release ------------------------------------------------------------------------
def test_code_only_release_pulls_only_the_code_layer(site: Site, registry_log: Path, code_release: CodeRelease) -> None:
    release, report, predicted = code_release.release, code_release.deploy.json(), code_release.dry_run.json()
    assert report["version"] == release.tag and report["healthy"], code_release.deploy.describe()
    assert predicted["dry_run"] is True
    assert (predicted["predicted_bytes"], predicted["predicted_layers"]) == (report["predicted_bytes"], report["predicted_layers"])
    assert get_json(site.port, "/healthz")["commit"] == release.commit
    shipped = site.server.container.execute(app_container(site.server, site.project), ["cat", f"/app/{CODE_FILE}"])
    assert marker_line(CODE_MARKER) in shipped + "\n", "the release does not run the committed code"

    # What the server engine really fetched of this release, from the registry's access log.
    # (Other engines' pulls of shared layers in the same seconds would show up as extra digests.)
    engine = accesses_between(registry_log, *code_release.log_window, only=ENGINE_USER_AGENT)
    by_engine = blob_gets(engine, APP_REPOSITORY, release.blobs.blob_digests)
    count, served = served_blob_bytes(by_engine, APP_REPOSITORY)
    fetched = {a.path.rsplit("/", 1)[1] for a in by_engine}
    assert served == report["predicted_bytes"], f"the engine fetched {count} blobs, {served} bytes: {sorted(fetched)}"
    assert fetched == {*predicted["predicted_digests"], release.blobs.config[0]}
    # The engine's own progress lines: the same layers; their sizes, printed to four digits, without the config.
    layer_bytes = served - release.blobs.config[1]
    assert report["measured_layers"] == report["predicted_layers"], report
    assert abs(report["measured_bytes"] - layer_bytes) <= max(2, layer_bytes // 1000) * report["measured_layers"], report
    # All clients: the deploy task itself also reads the config blob (for the diff ids).
    everyone = accesses_between(registry_log, *code_release.log_window)
    _, all_served = served_blob_bytes(blob_gets(everyone, APP_REPOSITORY, release.blobs.blob_digests))
    assert served <= all_served <= served + release.blobs.config[1]

    assert report["predicted_bytes"] < report["total_bytes"] / 100
    assert 1 <= report["predicted_layers"] <= 2, (
        f"a code-only release pulled {report['predicted_layers']} of {report['total_layers']} layers: "
        "a layer below the code differs from the previous release's"
    )


# -- 5. a release that fails its health check --------------------------------------------------------
def test_failed_health_check_leaves_the_previous_release_serving(site: Site, code_release: CodeRelease, failed_deploy: FailedDeploy) -> None:
    run, previous = failed_deploy.deploy, code_release.release
    assert run.returncode == 1, run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    assert len(run.error_lines) == 1 and run.stderr_lines[-1] == run.error_lines[0], run.describe()
    assert f"{previous.tag} is still serving" in run.error_lines[0]
    report = run.json()
    assert (report["version"], report["healthy"], report["rolled_back"]) == (failed_deploy.release.tag, False, True)
    assert report["previous"] == previous.tag

    assert get_json(site.port, "/healthz")["commit"] == previous.commit
    assert failed_deploy.runs_before >= 1
    assert get_json(site.port, "/runs")["total"] >= failed_deploy.runs_before, "the data volume lost job runs"


# -- 6. rollback -----------------------------------------------------------------------------------
def test_rollback_returns_to_the_previous_release_without_pulling(
    site: Site, registry_log: Path, first_release: Release, code_release: CodeRelease, rollback: tuple[TaskRun, tuple[int, int]]
) -> None:
    run, log_window = rollback
    report = run.json()
    assert (report["version"], report["previous"]) == (first_release.tag, code_release.release.tag)
    assert (report["healthy"], report["rolled_back"], report["digest"]) == (True, True, first_release.digest)
    assert "no pull" in run.stderr

    # A pull would at least ask for the manifest and fetch the config, both unique to the release
    # (its layers are shared with other releases, which other tests may pull meanwhile).
    names = (f"/manifests/{first_release.tag}", first_release.digest, first_release.blobs.config[0])
    fetched = [a for a in accesses_between(registry_log, *log_window) if any(name in a.path for name in names)]
    assert fetched == [], "the rollback fetched the release from the registry"
    assert get_json(site.port, "/healthz")["commit"] == first_release.commit


# -- 7. status -------------------------------------------------------------------------------------
def test_status_shows_the_running_release_and_history_newest_first(
    first_release: Release, code_release: CodeRelease, status: dict[str, Any], deps_build: TaskRun,
    docker: DockerClient, testbed: Testbed,
) -> None:
    running = status["running"]
    assert (running["tag"], running["digest"]) == (first_release.tag, first_release.digest)
    assert (running["state"], running["health"]) == ("running", "healthy")
    history = [(entry["kind"], entry["tag"]) for entry in status["history"]]
    code = code_release.release.tag
    # The failed release never took over, so it left no entry.
    assert history == [("rollback", first_release.tag), ("deploy", code), ("deploy", first_release.tag)]
    times = [entry["time"] for entry in status["history"]]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)
    assert status["lock"] is None
    deps = status["deps"]  # the running image's base and deps image (issue 11)
    assert deps["deps_tag"] == deps_build.stdout.split()[0].rsplit(":", 1)[1]
    assert deps["base_digest"] == docker.image.inspect(testbed.python_image).id and deps["newer"] is None
    assert deps["age_days"] is not None and deps["age_days"] >= 0


# -- 8. bump ---------------------------------------------------------------------------------------
@pytest.fixture
def bump_clone(tmp_path: Path, testbed: Testbed) -> Clone:
    """A clone whose pyproject.toml has a comment on both version lines too."""
    repo = Clone.create(tmp_path / "repo", testbed)
    path = repo.path / "pyproject.toml"
    text, count = re.subn(r'(?m)^(version = "[^"]*")$', r"\1  # keep this comment", path.read_text())
    assert count == 2, "expected the app and the deps version lines"
    path.write_text(text)
    repo.commit("comments on the version lines")
    return repo


def bumped(version: str, part: str) -> str:
    major, minor, patch = map(int, version.split("."))
    return {"major": f"{major + 1}.0.0", "minor": f"{major}.{minor + 1}.0", "patch": f"{major}.{minor}.{patch + 1}"}[part]


def changed_lines(before: list[str], after: list[str]) -> list[tuple[str, str]]:
    assert len(before) == len(after), "bump added or removed lines"
    return [(old, new) for old, new in zip(before, after, strict=True) if old != new]


@pytest.mark.parametrize(
    ("args", "version_of"),
    [(("patch",), "app"), (("minor", "--deps"), "deps")],
    ids=["patch-app", "minor-deps"],
)
def test_bump_changes_only_the_version_line(bump_clone: Clone, args: tuple[str, ...], version_of: str) -> None:
    path = bump_clone.path / "pyproject.toml"
    before = path.read_text().splitlines(keepends=True)
    versions = {"app": bump_clone.app_version, "deps": bump_clone.deps_version}
    old, new = versions[version_of], bumped(versions[version_of], args[0])
    run = succeeded(bump_clone.invoke("bump", *args))
    assert run.stdout.strip() == f"{version_of} version {old} -> {new}"
    assert changed_lines(before, path.read_text().splitlines(keepends=True)) == [
        (f'version = "{old}"  # keep this comment\n', f'version = "{new}"  # keep this comment\n')
    ]
    assert {"app": bump_clone.app_version, "deps": bump_clone.deps_version} == {**versions, version_of: new}


def test_bump_rejects_an_unknown_part_and_leaves_the_file_alone(bump_clone: Clone) -> None:
    path = bump_clone.path / "pyproject.toml"
    before = path.read_bytes()
    line = only_an_error_line(bump_clone.invoke("bump", "banana"))
    assert all(part in line for part in ("major", "minor", "patch")), line
    assert path.read_bytes() == before
    assert bump_clone.is_clean()


# -- 9. errors a user can fix ----------------------------------------------------------------------
def test_deploy_of_an_unknown_release_fails_in_one_line_and_changes_nothing(clone: Clone, site: Site) -> None:
    before = [c.id for c in site.server.container.list(all=True, filters=project_filter(site.project))]
    line = only_an_error_line(clone.invoke("deploy", "--version", "9.9.9-000000000000", "--host", site.host))
    assert "9.9.9-000000000000" in line and "not in the registry" in line
    assert [c.id for c in site.server.container.list(all=True, filters=project_filter(site.project))] == before


def test_deploy_to_an_invalid_host_names_the_valid_forms(clone: Clone) -> None:
    line = only_an_error_line(clone.invoke("deploy", "--host", "http://nope"))
    assert "http://nope" in line
    assert all(form in line for form in ("unix://", "ssh://", "tcp://", "context")), line


def test_build_app_with_an_unreachable_remote_registry_fails_in_one_line(clone: Clone) -> None:
    line = only_an_error_line(clone.invoke("build-app", env={"INVOKE_DEPLOY_REGISTRY": "nope.invalid:5999"}))
    assert "nope.invalid:5999 is unreachable" in line


def test_deploy_with_a_stopped_loopback_registry_fails_without_starting_one(clone: Clone, site: Site) -> None:
    port = free_port()
    run = clone.invoke("deploy", "--host", site.host, env={"INVOKE_DEPLOY_REGISTRY": f"127.0.0.1:{port}"})
    line = only_an_error_line(run)
    assert f"127.0.0.1:{port} is unreachable" in line
    assert listening_pids(port) == [], "deploy started something on the registry port"


def test_build_app_starts_a_stopped_loopback_registry_on_demand(clone: Clone) -> None:
    """For a loopback registry that does not answer, build tasks start one (Debian's docker-registry).

    Empty, it lacks the deps image, so build-app then stops at the deps check.
    The registry outlives the task; the test stops it.
    """
    port = free_port()
    state = LOCAL_REGISTRY_STATE.with_name(f"{LOCAL_REGISTRY_STATE.name}-{port}")
    try:
        run = clone.invoke("build-app", env={"INVOKE_DEPLOY_REGISTRY": f"127.0.0.1:{port}"})
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.describe()
        assert f"registry 127.0.0.1:{port} is not running: starting a local one" in run.stderr
        assert len(run.error_lines) == 1 and run.stderr_lines[-1] == run.error_lines[0], run.describe()
        assert f"127.0.0.1:{port}/{DEPS_REPOSITORY}:deps-" in run.error_lines[0]
        assert "`invoke build-deps`" in run.error_lines[0]
        assert httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=5).status_code == 200
        assert (state / "config.yml").exists(), "the on-demand registry keeps its data per port"
    finally:
        for pid in listening_pids(port):
            if any("docker-registry" in arg for arg in command_line(pid)[:1]):
                stop_process(pid)
        remove_tree(state)

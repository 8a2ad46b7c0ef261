"""Builds on an engine with the classic (overlay2) image store: the engine path, end to end.

The test bed's classic-store builder engine (TESTBED_CLASSIC_BUILDER_HOST, started by
scripts/testbed) is a dedicated engine, not the overlay2 server: a server that built the
images would hold every layer already, and its pulls would measure nothing.

With DOCKER_HOST on that engine, the tasks find the `docker` driver and the classic store,
so they build into the engine and push with `docker push`. The chain, each step once:
build-deps (a lock of this module's own, so the deps image is really built here) ->
build-app (release 1) -> deploy to the overlay2 server -> a code-only release, deployed,
its pull read from the registry's access log -> the same commit rebuilt without cache, app
only (a CI rerun) and deps + app (a clean builder): what a server that runs the release
would pull, measured by pulling it there. The measurements are saved at the end to the
`builders` results file (tests/integration/support/results.py), which docs/performance.md publishes.
"""

import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.release.pullreport import human_bytes, served_blob_bytes
from tests.integration.support.results import KINDS, record
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
    free_port,
    get_json,
    git,
    log_size,
    project_filter,
    release_blobs,
    remove_project,
    succeeded,
)
from tests.integration.support.testbed import START_HINT, Testbed

pytestmark = pytest.mark.docker

BUILD_TIMEOUT = 1200
ENGINE_PATH = "building into the engine and pushing with docker push"
CODE_FILE = "production_control/jobs.py"
FIRST_MARKER, CODE_MARKER = uuid.uuid4().hex, uuid.uuid4().hex
RUNTIME_LAYERS = 4  # the runtime stage's COPY layers: entrypoint, crontab, pyproject.toml, the code
MEASURED: dict[str, dict[str, int]] = {}  # results key (results.KINDS['builders']) -> figures, saved at the end


def marker_line(marker: str) -> str:
    return f"# release marker {marker}\n"


@dataclass
class Site:
    host: str
    project: str
    port: int
    server: DockerClient
    builder: DockerClient
    release_tags: list[str] = field(default_factory=list)
    built_refs: set[str] = field(default_factory=set)  # left on the builder engine, removed at the end


@dataclass(frozen=True)
class Release:
    tag: str
    digest: str
    commit: str
    blobs: ReleaseBlobs
    build: TaskRun




def engine(host: str, what: str) -> DockerClient:
    client = DockerClient(host=host)
    try:
        client.system.info()
    except (DockerException, OSError) as error:
        pytest.fail(f"the {what} {host} is not reachable ({error}): {START_HINT}", pytrace=False)
    return client


@pytest.fixture(scope="module")
def site(testbed: Testbed) -> Iterator[Site]:
    builder = engine(testbed.classic_builder_host, "classic-store builder engine")
    assert builder.system.info().driver == "overlay2", "the classic builder must keep images in the overlay2 store"
    made = Site(testbed.server_host, f"pcclassic-{uuid.uuid4().hex[:8]}", free_port(),
                engine(testbed.server_host, "server engine"), builder)
    yield made
    remove_project(made.server, made.project, made.release_tags)
    for ref in made.built_refs:  # untag; the build cache stays
        with suppress(DockerException):
            made.builder.image.remove(ref)
    with suppress(DockerException):  # the images a same-tag rebuild left untagged (only these tests build there)
        made.builder.image.prune()
    assert not made.server.container.list(all=True, filters=project_filter(made.project))


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory, testbed: Testbed, site: Site) -> Clone:
    repo = Clone.create(tmp_path_factory.mktemp("classic") / "repo", testbed)
    with (repo.path / "requirements.lock").open("a") as f:  # a deps tag of this module's own
        f.write(f"# classic-store builder tests {uuid.uuid4().hex}\n")
    with (repo.path / CODE_FILE).open("a") as f:
        f.write(marker_line(FIRST_MARKER))
    repo.commit("classic builder: a deps image of its own, a marker in jobs.py")
    repo.env.update(
        DOCKER_HOST=testbed.classic_builder_host,
        INVOKE_DEPLOY_COMPOSE_PROJECT=site.project,
        INVOKE_DEPLOY_HTTP_PORT=str(site.port),
        INVOKE_DEPLOY_HEALTH_TIMEOUT="60",
    )
    return repo


def build_app(repo: Clone, site: Site, *flags: str) -> Release:
    run = succeeded(repo.invoke("build-app", "--json", *flags, timeout=BUILD_TIMEOUT))
    result = run.json()
    site.release_tags.append(result["tag"])
    site.built_refs.add(result["image"])
    return Release(result["tag"], result["digest"], repo.head(), release_blobs(REGISTRY, APP_REPOSITORY, result["tag"]), run)


def deploy(repo: Clone, site: Site, *flags: str) -> TaskRun:
    return succeeded(repo.invoke("deploy", "--host", site.host, "--json", *flags))


def server_pull(site: Site, registry_log: Path, release: Release) -> tuple[set[str], int]:
    """Pull `release` on the server engine as a deploy would; the blobs the registry served it, and their bytes."""
    before = log_size(registry_log)
    site.server.image.pull(f"{REGISTRY}/{APP_REPOSITORY}:{release.tag}", quiet=True)
    accesses = accesses_between(registry_log, before, log_size(registry_log), only=ENGINE_USER_AGENT)
    fetched = blob_gets(accesses, APP_REPOSITORY, release.blobs.blob_digests)
    return {a.path.rsplit("/", 1)[1] for a in fetched}, served_blob_bytes(fetched, APP_REPOSITORY)[1]


def image_bytes(blobs: ReleaseBlobs) -> int:
    return blobs.config[1] + sum(size for _, size in blobs.layers)


def figures(layers: int, served: int, blobs: ReleaseBlobs) -> dict[str, int]:
    """One scenario's pull on the overlay2 server: layers and blob bytes (config included, no manifest)."""
    return {"layers": layers, "bytes": served, "total_layers": len(blobs.layers), "image_bytes": image_bytes(blobs)}


# -- the chain ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deps_build(clone: Clone, site: Site) -> TaskRun:
    run = succeeded(clone.invoke("build-deps", "--json", timeout=BUILD_TIMEOUT))
    site.built_refs.add(run.json()["image"])
    return run


@pytest.fixture(scope="module")
def first_release(clone: Clone, site: Site, deps_build: TaskRun) -> Release:
    return build_app(clone, site)


@pytest.fixture(scope="module")
def first_deploy(clone: Clone, site: Site, first_release: Release) -> TaskRun:
    return deploy(clone, site)


@pytest.fixture(scope="module")
def code_release(clone: Clone, site: Site, registry_log: Path, first_deploy: TaskRun) -> tuple[Release, dict, tuple[int, int]]:
    clone.replace_text(CODE_FILE, marker_line(FIRST_MARKER), marker_line(CODE_MARKER))
    clone.commit("a code-only change")
    release = build_app(clone, site)
    before = log_size(registry_log)
    report = deploy(clone, site).json()
    return release, report, (before, log_size(registry_log))


@pytest.fixture(scope="module")
def registry_log(testbed: Testbed) -> Path:
    if not testbed.registry_log.is_file():
        pytest.fail(f"the registry access log {testbed.registry_log} is missing: {START_HINT}", pytrace=False)
    return testbed.registry_log


# -- build-deps, build-app, deploy ----------------------------------------------------------------------
def test_build_deps_takes_the_engine_path_and_pushes(clone: Clone, deps_build: TaskRun) -> None:
    result = deps_build.json()
    assert result["built"] is True, deps_build.describe()
    assert ENGINE_PATH in deps_build.stderr and "overlay2 image store" in deps_build.stderr, deps_build.describe()
    assert "OCI exporter" not in deps_build.stderr
    tag = result["image"].rsplit(":", 1)[1]
    assert release_blobs(REGISTRY, DEPS_REPOSITORY, tag).digest == result["digest"]
    again = succeeded(clone.invoke("build-deps", "--json"))
    assert again.json()["built"] is False and "already in the registry" in again.stderr


def test_build_app_is_from_the_pushed_deps_image(deps_build: TaskRun, first_release: Release) -> None:
    assert ENGINE_PATH in first_release.build.stderr, first_release.build.describe()
    deps = release_blobs(REGISTRY, DEPS_REPOSITORY, deps_build.json()["image"].rsplit(":", 1)[1])
    assert first_release.blobs.layers[: len(deps.layers)] == deps.layers, "the app image must reuse the deps image's blobs"
    assert len(first_release.blobs.layers) - len(deps.layers) == RUNTIME_LAYERS
    assert first_release.digest == first_release.blobs.digest


def test_deploy_runs_the_release(site: Site, first_release: Release, first_deploy: TaskRun) -> None:
    report = first_deploy.json()
    assert (report["healthy"], report["digest"]) == (True, first_release.digest), first_deploy.describe()
    assert get_json(site.port, "/healthz")["commit"] == first_release.commit


def test_code_only_release_pulls_only_its_code_layers(
    site: Site, registry_log: Path, first_release: Release, code_release: tuple[Release, dict, tuple[int, int]]
) -> None:
    release, report, window = code_release
    assert report["healthy"] and report["version"] == release.tag, report
    shipped = site.server.container.execute(app_container(site.server, site.project), ["cat", f"/app/{CODE_FILE}"])
    assert marker_line(CODE_MARKER) in shipped + "\n"

    code_layers = set(release.blobs.layers[-RUNTIME_LAYERS:])
    assert release.blobs.layers[:-RUNTIME_LAYERS] == first_release.blobs.layers[:-RUNTIME_LAYERS], "a deps layer changed"
    engine = blob_gets(accesses_between(registry_log, *window, only=ENGINE_USER_AGENT), APP_REPOSITORY, release.blobs.blob_digests)
    count, served = served_blob_bytes(engine, APP_REPOSITORY)
    fetched = {a.path.rsplit("/", 1)[1] for a in engine}
    assert served == report["predicted_bytes"], f"the deploy reported {report['predicted_bytes']} bytes, the registry served {served}"
    assert fetched <= {digest for digest, _ in code_layers} | {release.blobs.config[0]}, "a server pulled more than the code layers"
    assert release.blobs.config[0] in fetched
    assert 1 <= report["predicted_layers"] <= RUNTIME_LAYERS
    assert served < image_bytes(release.blobs) / 1000
    MEASURED["code"] = figures(len(fetched - {release.blobs.config[0]}), served, release.blobs)


# -- the same commit rebuilt: what the engine path loses, measured -----------------------------------------
def test_same_commit_rebuilt_app_only(
    clone: Clone, site: Site, registry_log: Path, code_release: tuple[Release, dict, tuple[int, int]]
) -> None:
    """A CI rerun: the deps image is in the registry, the app is rebuilt without cache."""
    deployed = code_release[0]
    rebuilt = build_app(clone, site, "--no-cache")
    assert rebuilt.tag == deployed.tag
    assert rebuilt.blobs.layers[:-RUNTIME_LAYERS] == deployed.blobs.layers[:-RUNTIME_LAYERS], "the deps layers must be reused"
    predicted = deploy(clone, site, "--dry-run").json()
    fetched, served = server_pull(site, registry_log, rebuilt)
    assert served == predicted["predicted_bytes"], f"predicted {predicted['predicted_bytes']} bytes, the registry served {served}"
    assert fetched <= {d for d, _ in rebuilt.blobs.layers[-RUNTIME_LAYERS:]} | {rebuilt.blobs.config[0]}, "a deps layer was pulled"
    MEASURED["rebuild-app"] = figures(len(fetched - {rebuilt.blobs.config[0]}), served, rebuilt.blobs)


def test_same_commit_rebuilt_on_a_clean_builder(
    clone: Clone, site: Site, registry_log: Path, tmp_path: Path, code_release: tuple[Release, dict, tuple[int, int]]
) -> None:
    """Deps and app rebuilt without cache from a second checkout: every RUN layer is new on this path."""
    deployed = code_release[0]
    other = Clone(tmp_path / "elsewhere", clone.testbed, dict(clone.env))
    git(None, "clone", "--quiet", str(clone.path), str(other.path))
    deps = succeeded(other.invoke("build-deps", "--force", "--no-cache", "--json", timeout=BUILD_TIMEOUT)).json()
    assert deps["built"] is True
    rebuilt = build_app(other, site, "--no-cache")
    assert rebuilt.tag == deployed.tag
    predicted = deploy(other, site, "--dry-run").json()
    fetched, served = server_pull(site, registry_log, rebuilt)
    assert served == predicted["predicted_bytes"], f"predicted {predicted['predicted_bytes']} bytes, the registry served {served}"
    base = deployed.blobs.layers[0]
    assert rebuilt.blobs.layers[0] == base and base[0] not in fetched, "the base image is not built here: its layer stays"
    assert 0 < served <= image_bytes(rebuilt.blobs) - base[1]
    MEASURED["rebuild-clean"] = figures(len(fetched - {rebuilt.blobs.config[0]}), served, rebuilt.blobs)


def test_a_failed_build_shows_its_steps_then_names_the_failing_step_and_what_to_do(clone: Clone, deps_build: TaskRun) -> None:
    """A lock pinning a version the index does not have: pip fails in a dependency layer's RUN step."""
    lock = clone.path / "requirements.lock"
    text = lock.read_text()
    pinned = next(line for line in text.splitlines() if line.startswith("fastapi=="))
    try:
        lock.write_text(text.replace(pinned, "fastapi==99.0.0 \\", 1))
        run = clone.invoke("build-deps", timeout=BUILD_TIMEOUT)
    finally:
        clone.discard_changes()
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.describe()
    assert any(line.startswith("#") and "[os" in line for line in run.stderr_lines), "no BuildKit progress was shown"
    assert len(run.error_lines) == 1 and run.stderr_lines[-1] == run.error_lines[0], run.describe()
    line = run.error_lines[0]
    assert "failed at step [layer-" in line and "install-layer.sh" in line, line
    assert "fastapi==99.0.0" in line and "`invoke lock`" in line, line
    assert "docs.docker.com" not in line and "see the build log" not in line


def test_report_measurements(capsys: pytest.CaptureFixture[str]) -> None:
    """Saves what was measured to the builders results file (docs/performance.md publishes it) and prints it;
    fails when a step did not measure."""
    assert set(MEASURED) == set(KINDS["builders"]), f"measured only {sorted(MEASURED)}"
    for key, measured in MEASURED.items():
        path = record("builders", key, {**measured, "builder": "classic overlay2 engine, docker driver (engine path)"})
    with capsys.disabled():
        print(f"\nclassic-store builder (engine path), pulls of the overlay2 server (saved in {path}):")
        for key, m in MEASURED.items():
            print(f"  {KINDS['builders'][key]:<62} {m['layers']:>2} layers + config  "
                  f"{human_bytes(m['bytes']):>9} of {human_bytes(m['image_bytes'])}")

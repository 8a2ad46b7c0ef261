"""Multi-platform images: linux/amd64 and linux/arm64 in one index per tag, built on this x86 machine
through QEMU user emulation (the test bed registers it), and deploys that pick each host's platform.

The arm64 images are built once per session (the build-deps of this module's clone, with
deploy.platforms both and the test bed's multi-platform base from its registry), then two app
releases FROM it: the second changes one line of Python. The test bed has no arm64 engine: an arm64
server is played by the overlay2 server engine pulling and running with `--platform linux/arm64`
(under QEMU), measured in the registry's access log against the toolkit's prediction for arm64.
`invoke deploy` goes to that same engine as the amd64 host it is.
"""

import gzip
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.docker.engine import image_layers
from delivery.registry.client import Registry
from delivery.release.pullreport import host_layers, plan_pull, served_blob_bytes
from tests.integration.support.appcontainer import remove_app, start_app, wait_for_healthz
from tests.integration.support.tasks_helpers import (
    APP_REPOSITORY,
    DEPS_REPOSITORY,
    ENGINE_USER_AGENT,
    MANIFEST_TYPES,
    REGISTRY,
    Clone,
    ReleaseBlobs,
    TaskRun,
    accesses_between,
    app_container,
    blob_gets,
    free_port,
    get_json,
    log_size,
    only_an_error_line,
    project_filter,
    release_blobs,
    remove_project,
    succeeded,
)
from tests.integration.support.testbed import CA_BUNDLE, REPO_ROOT, START_HINT, Testbed

pytestmark = pytest.mark.docker

PLATFORMS = ("linux/amd64", "linux/arm64")
EMULATED_BUILD_TIMEOUT = 3600  # the arm64 pip installs run under QEMU
EMULATED_HEALTHZ_TIMEOUT = 120  # uvicorn starting under QEMU
CODE_FILE = "production_control/jobs.py"


@dataclass(frozen=True)
class AppRelease:
    tag: str
    digest: str  # what the tag names: the index
    commit: str
    seconds: float  # the build-app run, measured

    def blobs(self, architecture: str) -> ReleaseBlobs:
        return release_blobs(REGISTRY, APP_REPOSITORY, self.tag, architecture)


@dataclass
class Multi:
    """This module's clone (both platforms), the server it deploys to, and what it pushed."""

    clone: Clone
    server: DockerClient
    host: str
    project: str
    port: int
    ca_marker: str
    deps: TaskRun | None = None
    releases: list[AppRelease] = field(default_factory=list)
    pulled_refs: list[str] = field(default_factory=list)  # arm64 images pulled by digest onto the server

    @property
    def deps_tag(self) -> str:
        assert self.deps is not None
        return str(self.deps.json()["image"]).rsplit(":", 1)[1]

    def build_app(self) -> AppRelease:
        run = succeeded(self.clone.invoke("build-app", "--json", timeout=EMULATED_BUILD_TIMEOUT))
        result = run.json()
        return AppRelease(result["tag"], result["digest"], self.clone.head(), run.seconds)


def index_of(repository: str, reference: str) -> tuple[dict[str, Any], str]:
    """The index document the tag names, and its digest, straight from the registry API."""
    response = httpx.get(f"http://{REGISTRY}/v2/{repository}/manifests/{reference}",
                         headers={"Accept": ", ".join(MANIFEST_TYPES)}, timeout=10)
    assert response.status_code == 200, f"{repository}:{reference}: HTTP {response.status_code}"
    return response.json(), response.headers["docker-content-digest"]


def entries(index: dict[str, Any]) -> dict[str, str]:
    """platform -> manifest digest of an index."""
    return {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in index.get("manifests", [])}


def blob(repository: str, digest: str) -> bytes:
    response = httpx.get(f"http://{REGISTRY}/v2/{repository}/blobs/{digest}", timeout=120, follow_redirects=True)
    assert response.status_code == 200, f"{repository}@{digest}: HTTP {response.status_code}"
    return response.content


# -- the session's one emulated build, and what it pushed ------------------------------------------------
@pytest.fixture(scope="session")
def multi(tmp_path_factory: pytest.TempPathFactory, testbed: Testbed, docker: DockerClient) -> Iterator[Multi]:
    if not testbed.multi_python_image:
        pytest.fail(f"the test bed has no multi-platform base (TESTBED_MULTI_PYTHON_IMAGE): {START_HINT}", pytrace=False)
    # The arm64 base (built under QEMU, a few minutes once per machine) is made only for these tests.
    made = subprocess.run([str(REPO_ROOT / "scripts" / "testbed"), "multiarch"], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"`scripts/testbed multiarch` failed: {made.stderr.strip()[-500:]}", pytrace=False)
    server = DockerClient(host=testbed.server_host)
    try:
        server.system.info()
    except (DockerException, OSError) as error:
        pytest.fail(f"the server engine {testbed.server_host} is not reachable ({error}): {START_HINT}", pytrace=False)
    tmp = tmp_path_factory.mktemp("multi")
    marker = f"ca-marker-{uuid.uuid4().hex}"
    ca = tmp / "ca-bundle.pem"
    ca.write_text(CA_BUNDLE.read_text() + f"\n# {marker}\n")
    clone = Clone.create(tmp / "repo", testbed)
    bed = Multi(clone, server, testbed.server_host, f"pcmulti-{uuid.uuid4().hex[:10]}", free_port(), marker)
    clone.env.update(
        INVOKE_DEPLOY_PLATFORMS=",".join(PLATFORMS),
        INVOKE_DEPLOY_PYTHON_IMAGE=testbed.multi_python_image,  # an index of both, as python:3.12-slim is
        INVOKE_DEPLOY_CA_BUNDLE=str(ca),  # PyPI through the TLS-inspecting proxy, for the emulated pip too
        INVOKE_DEPLOY_COMPOSE_PROJECT=bed.project,
        INVOKE_DEPLOY_HTTP_PORT=str(bed.port),
        INVOKE_DEPLOY_HEALTH_TIMEOUT="60",
        INVOKE_DEPLOY_MONITOR="2",
    )
    yield bed
    remove_project(server, bed.project, [r.tag for r in bed.releases])
    for ref in bed.pulled_refs:
        try:
            server.image.remove(ref)
        except DockerException:
            pass


@pytest.fixture(scope="session")
def built(multi: Multi) -> Multi:
    """build-deps for both platforms (the arm64 half under QEMU), then two app releases; the second
    changes one line of Python (same size)."""
    multi.deps = succeeded(multi.clone.invoke("build-deps", "--json", timeout=EMULATED_BUILD_TIMEOUT))
    print(f"\nbuild-deps for {','.join(PLATFORMS)}: {multi.deps.seconds:.0f}s "
          f"({'built' if multi.deps.json()['built'] else 'already in the registry'})")
    with (multi.clone.path / CODE_FILE).open("a") as f:
        f.write(f"# multi-platform release marker {uuid.uuid4().hex}\n")
    multi.clone.commit("multi-platform release 1")
    multi.releases.append(multi.build_app())
    multi.clone.replace_text(CODE_FILE, multi.clone.path.joinpath(CODE_FILE).read_text().splitlines()[-1],
                             f"# multi-platform release marker {uuid.uuid4().hex}")
    multi.clone.commit("multi-platform release 2: a code-only change")
    multi.releases.append(multi.build_app())
    print(f"build-app for {','.join(PLATFORMS)}: {multi.releases[0].seconds:.0f}s, {multi.releases[1].seconds:.0f}s")
    return multi


@dataclass(frozen=True)
class Arm64Pull:
    predicted: Any  # the toolkit's PullPlan for the arm64 image of release 2, on the server as it was
    window: tuple[int, int]  # registry access log sizes around the pull of release 2
    seconds: float


@pytest.fixture(scope="session")
def arm64_pull(built: Multi, testbed: Testbed) -> Arm64Pull:
    """The server plays an arm64 host: release 1's arm64 image, then release 2's (a code-only release)."""
    first, second = built.releases
    refs = [f"{REGISTRY}/{APP_REPOSITORY}@{r.blobs('arm64').digest}" for r in (first, second)]
    built.pulled_refs.extend(refs)
    built.server.image.pull(refs[0], quiet=True, platform="linux/arm64")
    registry = Registry(REGISTRY)
    manifest = registry.manifest(APP_REPOSITORY, second.tag, "linux/arm64")
    diff_ids = registry.config(APP_REPOSITORY, manifest)["rootfs"]["diff_ids"]
    have = host_layers("overlay2", image_layers(built.server))
    predicted = plan_pull(refs[1], manifest, diff_ids, have)
    before = log_size(testbed.registry_log)
    started = time.monotonic()
    built.server.image.pull(refs[1], quiet=True, platform="linux/arm64")
    seconds = time.monotonic() - started
    time.sleep(0.5)  # the registry writes its access log lines as it answers
    return Arm64Pull(predicted, (before, log_size(testbed.registry_log)), seconds)


@pytest.fixture(scope="session")
def deployed(built: Multi) -> TaskRun:
    """Release 2 deployed to the (amd64) server with `invoke deploy`."""
    return succeeded(built.clone.invoke("deploy", "--host", built.host, "--version", built.releases[1].tag, "--json"))


# -- the index ---------------------------------------------------------------------------------------------
def test_each_tag_is_one_index_of_both_platforms(built: Multi) -> None:
    deps_index, deps_digest = index_of(DEPS_REPOSITORY, built.deps_tag)
    assert built.deps is not None and built.deps.json()["digest"] == deps_digest
    assert sorted(entries(deps_index)) == sorted(PLATFORMS), deps_index
    for release in built.releases:
        index, digest = index_of(APP_REPOSITORY, release.tag)
        assert digest == release.digest, "build-app reported another digest than the tag names"
        assert sorted(entries(index)) == sorted(PLATFORMS), index
        for platform in PLATFORMS:
            architecture = platform.split("/")[1]
            deps = release_blobs(REGISTRY, DEPS_REPOSITORY, built.deps_tag, architecture)
            app = release.blobs(architecture)
            config = httpx.get(f"http://{REGISTRY}/v2/{APP_REPOSITORY}/blobs/{app.config[0]}", timeout=10).json()
            assert (config["os"], config["architecture"]) == ("linux", architecture)
            # FROM the deps image of the same platform: its layers come first.
            assert app.layers[: len(deps.layers)] == deps.layers, platform
    amd64, arm64 = (release_blobs(REGISTRY, DEPS_REPOSITORY, built.deps_tag, a) for a in ("amd64", "arm64"))
    assert set(amd64.layers).isdisjoint(arm64.layers[:2]), "the arm64 base and OS layers are the amd64 ones"


def test_the_sbom_describes_the_index_and_the_debian_packages_of_both_platforms(built: Multi) -> None:
    _, deps_digest = index_of(DEPS_REPOSITORY, built.deps_tag)
    artifact, _ = index_of(DEPS_REPOSITORY, f"{built.deps_tag}.sbom")
    assert artifact["subject"]["digest"] == deps_digest, "the SBOM's subject is not the deps index"
    sbom = httpx.get(f"http://{REGISTRY}/v2/{DEPS_REPOSITORY}/blobs/{artifact['layers'][0]['digest']}", timeout=30).json()
    arches = {str(c["purl"]).split("arch=")[1].split("&")[0] for c in sbom["components"] if str(c.get("purl")).startswith("pkg:deb/")}
    assert {"amd64", "arm64"} <= arches, arches


def test_a_code_only_release_changes_only_the_code_layer_per_platform(built: Multi) -> None:
    first, second = built.releases
    for architecture in ("amd64", "arm64"):
        before, after = first.blobs(architecture), second.blobs(architecture)
        assert len(before.layers) == len(after.layers)
        changed = [i for i, (a, b) in enumerate(zip(before.layers, after.layers, strict=True)) if a != b]
        assert changed == [len(after.layers) - 1], f"{architecture}: layers {changed} changed, not only the code layer"
        assert before.config[0] != after.config[0]


def test_the_same_inputs_give_the_same_index_digest(built: Multi) -> None:
    """The app image again, without cache: the same index, byte for byte; the deps image again (cached
    steps, exported and assembled again): the same index."""
    again = succeeded(built.clone.invoke("build-app", "--no-cache", "--json", timeout=EMULATED_BUILD_TIMEOUT)).json()
    assert again["digest"] == built.releases[1].digest
    deps = succeeded(built.clone.invoke("build-deps", "--force", "--json", timeout=EMULATED_BUILD_TIMEOUT)).json()
    assert built.deps is not None and deps["digest"] == built.deps.json()["digest"]


def test_the_arm64_build_kept_the_ca_bundle_secret_out_of_its_layers(built: Multi) -> None:
    """pip reached PyPI through the TLS-inspecting proxy under QEMU too (the CA as a build secret); no layer has it."""
    assert built.deps is not None
    arm64 = release_blobs(REGISTRY, DEPS_REPOSITORY, built.deps_tag, "arm64")
    found = []
    for digest, _ in arm64.layers:
        data = blob(DEPS_REPOSITORY, digest)
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        if built.ca_marker.encode() in raw:
            found.append(digest)
    assert found == [], f"the CA bundle secret is in the arm64 layers {found}"
    assert len(arm64.layers) >= 6, "expected the base, the OS layer, the venv and the dependency layers"


# -- an arm64 host, played under QEMU ----------------------------------------------------------------------
def test_a_code_only_arm64_release_pulls_only_its_code_layer_and_config(built: Multi, arm64_pull: Arm64Pull,
                                                                        testbed: Testbed) -> None:
    second = built.releases[1].blobs("arm64")
    predicted = arm64_pull.predicted
    print(f"\narm64 code-only pull: {predicted.pulled_layers}/{predicted.total_layers} layers, "
          f"{predicted.pulled_bytes} of {predicted.total_bytes} bytes predicted; {arm64_pull.seconds:.2f}s")
    engine = accesses_between(testbed.registry_log, *arm64_pull.window, only=ENGINE_USER_AGENT)
    fetched = blob_gets(engine, APP_REPOSITORY, second.blob_digests)
    count, served = served_blob_bytes(fetched, APP_REPOSITORY)
    digests = {a.path.rsplit("/", 1)[1] for a in fetched}
    assert digests == {second.layers[-1][0], second.config[0]}, f"the arm64 pull fetched {sorted(digests)}"
    assert (predicted.pulled_layers, set(predicted.pulled_digests)) == (1, {second.layers[-1][0]})
    assert served == predicted.pulled_bytes == second.layers[-1][1] + second.config[1], (count, served, predicted)
    assert served < predicted.total_bytes / 100


def test_an_arm64_container_of_the_app_answers_healthz_under_emulation(built: Multi, arm64_pull: Arm64Pull) -> None:
    ref = built.pulled_refs[1]
    network = built.server.network.create(f"pc-multi-{uuid.uuid4().hex[:12]}")
    app = None
    try:
        started = time.monotonic()
        app = start_app(built.server, ref, network.name, role="web", platform="linux/arm64")
        health = wait_for_healthz(built.server, app, timeout=EMULATED_HEALTHZ_TIMEOUT)
        print(f"\narm64 container healthy after {time.monotonic() - started:.1f}s under QEMU")
        assert (health["status"], health["commit"]) == ("ok", built.releases[1].commit)
        assert str(built.server.container.execute(app.container, ["uname", "-m"])).strip() == "aarch64"
        assert built.server.image.inspect(ref).architecture == "arm64"
    finally:
        if app is not None:
            remove_app(built.server, app)
        built.server.network.remove(network)


# -- deploy: each host's platform ------------------------------------------------------------------------
def test_deploy_pulls_the_platform_of_the_host_and_checks_its_digest(built: Multi, deployed: TaskRun) -> None:
    report = deployed.json()
    second = built.releases[1]
    amd64 = second.blobs("amd64")
    assert (report["platform"], report["healthy"], report["error"]) == ("linux/amd64", True, None)
    # The digest check: the engine recorded the index's digest; the report names both.
    assert (report["digest"], report["index_digest"]) == (amd64.digest, second.digest)
    assert report["total_layers"] == len(amd64.layers)
    assert get_json(built.port, "/healthz")["commit"] == second.commit
    container = app_container(built.server, built.project)
    assert built.server.image.inspect(container.image).architecture == "amd64"
    status = succeeded(built.clone.invoke("status", "--host", built.host, "--json")).json()
    assert (status["platform"], status["running"]["tag"]) == ("linux/amd64", second.tag)
    text = succeeded(built.clone.invoke("status", "--host", built.host)).stdout
    assert "image store, linux/amd64" in text.splitlines()[0], text


def test_a_deploy_to_a_host_whose_platform_the_index_lacks_is_one_line_and_changes_nothing(
    built: Multi, deployed: TaskRun, testbed: Testbed
) -> None:
    """An index holding only the real arm64 image of release 2, deployed to the amd64 server."""
    second = built.releases[1]
    tag = f"{second.tag.split('-')[0]}-{uuid.uuid4().hex[:12]}"
    created = subprocess.run(
        ["docker", "buildx", "imagetools", "create", "-t", f"{REGISTRY}/{APP_REPOSITORY}:{tag}",
         f"{REGISTRY}/{APP_REPOSITORY}@{second.blobs('arm64').digest}"], capture_output=True, text=True)  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert list(entries(index_of(APP_REPOSITORY, tag)[0])) == ["linux/arm64"]
    before = [(c.id, c.state.status) for c in built.server.container.list(all=True, filters=project_filter(built.project))]
    log_before = log_size(testbed.registry_log)
    for flags in ((), ("--dry-run",)):
        line = only_an_error_line(built.clone.invoke("deploy", "--host", built.host, "--version", tag, *flags))
        assert "the image has no linux/amd64 variant for host" in line and f"{tag} has linux/arm64)" in line, line
        assert "nothing was changed" in line
    after = [(c.id, c.state.status) for c in built.server.container.list(all=True, filters=project_filter(built.project))]
    assert after == before
    engine = accesses_between(testbed.registry_log, log_before, log_size(testbed.registry_log), only=ENGINE_USER_AGENT)
    assert [a for a in engine if tag in a.path] == [], "the server pulled the release it has no platform for"
    assert get_json(built.port, "/healthz")["commit"] == second.commit

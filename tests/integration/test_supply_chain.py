"""Issue 11 on the real test bed: the base tracked by digest, refreshes, the SBOM, the audit.

The base image is served by the test bed's registry under a name of this module only
(`localhost:5000/pc-test-base-<id>:bookworm`, the production path: its digest comes from
the registry), first as the test bed's offline base, then republished as a different image
under the same name. Deps builds, the slowest builds here, are kept few: one on the first
base (which the SBOM tests read), one failed by a broken SBOM tool on the republished base
(its steps then cached), one refresh that pushes the republished base's deps image, and
one refresh that finds nothing to push.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from python_on_whales import DockerClient

from delivery.supply.sbom import locked_packages
from tests.integration.support.tasks_helpers import (
    DEPS_REPOSITORY,
    REGISTRY,
    Clone,
    TaskRun,
    deps_tags,
    free_port,
    one_error_line,
    registry_json,
    sbom_of,
    succeeded,
)
from tests.integration.support.testbed import REPO_ROOT, OsvStandin, Testbed

pytestmark = pytest.mark.docker

DEPS_BUILD_TIMEOUT = 1200


@dataclass(frozen=True)
class Bases:
    name: str  # registry/repository:tag, republished during the module
    first: str  # its first digest






def image_config(tag: str) -> dict[str, Any]:
    status, manifest = registry_json(f"{DEPS_REPOSITORY}/manifests/{tag}")
    assert status == 200, f"{DEPS_REPOSITORY}:{tag} is not in the registry"
    return registry_json(f"{DEPS_REPOSITORY}/blobs/{manifest['config']['digest']}")[1]


def tag_of(run: TaskRun) -> str:
    return run.json()["image"].rsplit(":", 1)[1]


# -- the steps, each run once ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def bases(docker: DockerClient, testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bases]:
    """The test bed's base pushed under a name of this module; `republish()` pushes another image under it."""
    name = f"{REGISTRY}/pc-test-base-{uuid.uuid4().hex[:10]}:bookworm"
    docker.image.tag(testbed.python_image, name)
    docker.image.push(name, quiet=True)
    yield Bases(name, _digest(name))
    docker.image.remove(name)


def _digest(name: str) -> str:
    repository, tag = name.split("/", 1)[1].rsplit(":", 1)
    response = httpx.head(f"http://{REGISTRY}/v2/{repository}/manifests/{tag}", timeout=10, headers={"Accept": ", ".join([
        "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json"])})
    assert response.status_code == 200, f"{name} is not in the registry"
    return response.headers["docker-content-digest"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory, testbed: Testbed, bases: Bases) -> Clone:
    repo = Clone.create(tmp_path_factory.mktemp("supply") / "repo", testbed)
    repo.env.update(INVOKE_DEPLOY_PYTHON_IMAGE=bases.name)
    return repo


@pytest.fixture(scope="module")
def first_build(clone: Clone) -> TaskRun:
    return succeeded(clone.invoke("build-deps", "--json", timeout=DEPS_BUILD_TIMEOUT))


@pytest.fixture(scope="module")
def unchanged(clone: Clone, first_build: TaskRun) -> TaskRun:
    return succeeded(clone.invoke("build-deps", "--json"))


@dataclass(frozen=True)
class Republished:
    digest: str
    tags_before: set[str]
    broken_sbom: TaskRun
    tags_after_broken: set[str]
    refresh: TaskRun
    again: TaskRun
    refresh_again: TaskRun


@pytest.fixture(scope="module")
def republished(docker: DockerClient, clone: Clone, bases: Bases, unchanged: TaskRun, tmp_path_factory: pytest.TempPathFactory) -> Republished:
    """The base name now points at another image (a point release: /etc/debian_version changes)."""
    context = tmp_path_factory.mktemp("republish")
    (context / "Dockerfile").write_text(f"FROM {bases.name}@{bases.first}\nRUN echo 12.99 >/etc/debian_version\n")
    docker.buildx.build(context, tags=[bases.name], push=True, provenance=False)
    digest = _digest(bases.name)
    tags_before = deps_tags()
    # An SBOM tool that fails: the build fails, and neither image nor SBOM is pushed.
    shadow = context / "shadow" / "cyclonedx"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise RuntimeError('the SBOM tool is broken')\n")
    broken = clone.invoke("build-deps", "--json", env={"PYTHONPATH": str(context / "shadow")}, timeout=DEPS_BUILD_TIMEOUT)
    tags_after_broken = deps_tags()
    refresh = succeeded(clone.invoke("build-deps", "--refresh", "--json", timeout=DEPS_BUILD_TIMEOUT))
    again = succeeded(clone.invoke("build-deps", "--json"))
    refresh_again = succeeded(clone.invoke("build-deps", "--refresh", "--json", timeout=DEPS_BUILD_TIMEOUT))
    return Republished(digest, tags_before, broken, tags_after_broken, refresh, again, refresh_again)


# -- 1. the base, by digest ------------------------------------------------------------------------------
def test_build_deps_builds_on_the_base_digest_the_registry_serves(first_build: TaskRun, bases: Bases) -> None:
    result = first_build.json()
    assert result["built"] is True
    assert result["base"] == f"{bases.name}@{bases.first}"
    labels = image_config(tag_of(first_build))["config"]["Labels"]
    assert (labels["production-control.base.name"], labels["production-control.base.digest"]) == (bases.name, bases.first)
    assert f"[os 1/3] FROM {bases.name}@{bases.first}" in first_build.stderr  # what BuildKit was given


def test_an_unchanged_base_stays_a_no_op(first_build: TaskRun, unchanged: TaskRun) -> None:
    assert unchanged.json()["built"] is False
    assert unchanged.json()["image"] == first_build.json()["image"]
    assert "already in the registry" in unchanged.stderr


def test_a_republished_base_changes_the_deps_tag_and_rebuilds(first_build: TaskRun, republished: Republished, bases: Bases) -> None:
    assert republished.digest != bases.first
    result = republished.refresh.json()
    assert result["built"] is True and result["base_changed"] is True
    assert result["base"] == f"{bases.name}@{republished.digest}"
    first_tag, new_tag = tag_of(first_build), tag_of(republished.refresh)
    assert new_tag != first_tag
    assert new_tag.split("-")[1] == first_tag.split("-")[1]  # same deps version: new content hash
    assert image_config(new_tag)["config"]["Labels"]["production-control.base.digest"] == republished.digest
    assert republished.again.json()["built"] is False and tag_of(republished.again) == new_tag


def test_a_refresh_of_a_new_base_predicts_each_store_before_pushing(first_build: TaskRun, republished: Republished) -> None:
    result = republished.refresh.json()
    assert result["compared_with"] == tag_of(first_build)
    by_store = {p["store"]: p for p in result["predicted_pull"]}
    assert set(by_store) == {"containerd", "overlay2"}
    # The new base layer sits below everything: the classic store re-pulls every layer above it,
    # the containerd store only the layers whose content changed.
    assert by_store["overlay2"]["pulled_layers"] > by_store["containerd"]["pulled_layers"] >= 1
    assert by_store["overlay2"]["pulled_bytes"] > by_store["containerd"]["pulled_bytes"]
    stderr = republished.refresh.stderr
    assert stderr.index("predicted pull on a server with the containerd store") < stderr.index("pushing ")


def test_a_refresh_with_nothing_new_pushes_nothing(republished: Republished) -> None:
    result = republished.refresh_again.json()
    assert result["built"] is False and result["identical"] is True
    assert tag_of(republished.refresh_again) == tag_of(republished.refresh)
    assert "nothing to push" in republished.refresh_again.stderr


# -- 2. faults ----------------------------------------------------------------------------------------------
def test_a_failing_sbom_tool_fails_the_build_and_pushes_nothing(republished: Republished) -> None:
    line = one_error_line(republished.broken_sbom, last=False)
    assert line.startswith("error: making the SBOM failed (RuntimeError: the SBOM tool is broken): nothing was pushed"), line
    assert republished.tags_after_broken == republished.tags_before


def test_an_unreachable_base_registry_during_a_refresh_is_one_line_and_pushes_nothing(clone: Clone) -> None:
    before = deps_tags()
    run = clone.invoke("build-deps", "--refresh", "--json",
                       env={"INVOKE_DEPLOY_PYTHON_IMAGE": f"127.0.0.1:{free_port()}/python:3.12-slim-bookworm"})
    line = one_error_line(run, last=False)
    assert line.startswith("error: cannot resolve the base image 127.0.0.1:"), line
    assert "nothing was built or pushed" in line
    assert deps_tags() == before


# -- 3. the SBOM ----------------------------------------------------------------------------------------------
def test_the_sbom_lists_every_locked_package_with_its_version(first_build: TaskRun, clone: Clone) -> None:
    document = sbom_of(tag_of(first_build))
    assert (document["bomFormat"], document["specVersion"]) == ("CycloneDX", "1.6")
    pypi = {c["name"]: c["version"] for c in document["components"] if c.get("purl", "").startswith("pkg:pypi/")}
    locked = {p.name: p.version for p in locked_packages((clone.path / "requirements.lock").read_text())}
    assert pypi == locked and len(locked) >= 10


def test_the_sbom_lists_the_images_debian_packages(first_build: TaskRun, bases: Bases) -> None:
    document = sbom_of(tag_of(first_build))
    debs = {c["name"]: c["version"] for c in document["components"] if c.get("purl", "").startswith("pkg:deb/debian/")}
    assert {"cron", "curl", "util-linux", "python3", "libc6"} <= set(debs)  # installed by the os stage, and the base's
    props = {p["name"]: p["value"] for p in document["metadata"]["component"]["properties"]}
    assert props["production-control:base.digest"] == bases.first


def test_the_image_records_its_debian_package_set_as_the_sbom_lists_it(first_build: TaskRun, docker: DockerClient) -> None:
    image = first_build.json()["image"]
    try:
        listed = docker.run(image, ["/usr/share/production-control/debian-packages.txt"], entrypoint="cat", remove=True)
    finally:
        docker.image.remove(image)
    recorded = dict(line.split("=", 1) for line in str(listed).splitlines() if line)
    debs = {c["name"]: c["version"] for c in sbom_of(tag_of(first_build))["components"] if c.get("purl", "").startswith("pkg:deb/")}
    assert {name.split(":")[0]: version for name, version in recorded.items()} == debs


# -- 4. the audit ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def osv() -> Iterator[OsvStandin]:
    service = OsvStandin()
    yield service
    service.close()


FIXTURE_LOCK = str(REPO_ROOT / "tests" / "integration" / "fixtures" / "vulnerable.lock")


def test_the_audit_fails_on_a_lock_with_a_known_advisory(clone: Clone, osv: OsvStandin) -> None:
    run = clone.invoke("audit", "--lock", FIXTURE_LOCK, env={"INVOKE_DEPLOY_AUDIT_OSV_URL": osv.url})
    line = one_error_line(run, last=False)
    assert line.startswith("error: audit failed: jinja2 2.10 has PYSEC-2019-217 (fixed in 2.10.1)"), line
    assert ("jinja2", "2.10") in osv.queries


def test_the_audit_passes_on_our_lock_and_asks_about_every_package(clone: Clone, osv: OsvStandin) -> None:
    start = len(osv.queries)
    result = succeeded(clone.invoke("audit", "--json", env={"INVOKE_DEPLOY_AUDIT_OSV_URL": osv.url})).json()
    locked = {(p.name.lower(), p.version) for p in locked_packages((clone.path / "requirements.lock").read_text())}
    assert result["ok"] is True and result["audited"] == len(locked)
    assert set(osv.queries[start:]) == locked


@pytest.mark.parametrize(("until", "passes"), [("2099-12-31", True), ("2020-01-01", False)], ids=["in-force", "expired"])
def test_a_dated_ignore_passes_until_its_date(clone: Clone, osv: OsvStandin, until: str, passes: bool) -> None:
    (clone.path / "audit-ignores.toml").write_text(
        f'[[ignore]]\nid = "CVE-2019-10906"\npackage = "jinja2"\nuntil = {until}\nreason = "test: sandbox unused"\n')
    try:
        run = clone.invoke("audit", "--lock", FIXTURE_LOCK, "--json", env={"INVOKE_DEPLOY_AUDIT_OSV_URL": osv.url})
    finally:
        clone.discard_changes()
    if passes:
        assert succeeded(run).json()["ignored"] == ["jinja2 2.10 has PYSEC-2019-217 (fixed in 2.10.1)"]
    else:
        line = one_error_line(run, last=False)
        assert "the ignore of CVE-2019-10906 (jinja2) expired on 2020-01-01" in line, line

"""build-deps never pushes a deps image whose Debian packages are older than the deps image it follows.

The deps image a new build follows is the one built last on the same base name (by its
SBOM's time). Here that is a deps tag made by this module: the test bed's base, pushed under
a name of this module only (`localhost:5000/pc-osguard-base-<id>:bookworm`), so no other
test follows these tags, and the module's SBOMs (made and pushed with delivery/supply/sbom.py)
say what the followed image holds:

1. an SBOM whose libzstd1 is newer than any the Debian archive serves (epoch 99): the build
   from cache has older packages, so it is built again without cache, which has them too: it
   is refused with one line naming the package, and neither the image nor its SBOM is pushed;
2. then one with an older libzstd1, timed later: the same build (its steps now cached) is
   pushed, and says which Debian packages changed.

Two deps builds (the refused one's second is without cache; the last run takes every step from the cache).
"""

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from python_on_whales import DockerClient

from delivery.images.base import BaseImage
from delivery.registry.client import Registry
from delivery.supply.sbom import DebianPackage, make_sbom, push_sbom
from tests.integration.support.tasks_helpers import DEPS_REPOSITORY, REGISTRY, Clone, TaskRun, deps_tags, one_error_line, sbom_of, succeeded
from tests.integration.support.testbed import Testbed

pytestmark = pytest.mark.docker

DEPS_BUILD_TIMEOUT = 1200
NEWER = "99:0"  # an epoch no bookworm libzstd1 has: newer than whatever the archive serves
OLDER = "0.1-1"


@dataclass(frozen=True)
class Guarded:
    base: str
    refused: TaskRun
    refused_image: str
    tags_after_refusal: set[str]
    newer_tag: str
    pushed: TaskRun
    older_tag: str


def followed_image(docker: DockerClient, base: str, debian: dict[str, str], at: datetime) -> str:
    """Push a deps tag (any image: the base) and its SBOM, built on `base` at `at` with `debian`; its tag."""
    tag = f"deps-0.0.0-{uuid.uuid4().hex[:12]}"
    ref = f"{REGISTRY}/{DEPS_REPOSITORY}:{tag}"
    docker.image.tag(base, ref)
    try:
        docker.image.push(ref, quiet=True)
    finally:
        docker.image.remove(ref)
    registry = Registry(REGISTRY)
    body = registry.raw_manifest(DEPS_REPOSITORY, tag)
    assert body is not None
    subject = {"mediaType": json.loads(body)["mediaType"], "digest": "sha256:" + hashlib.sha256(body).hexdigest(), "size": len(body)}
    base_digest = registry.digest(*base.split("/", 1)[1].rsplit(":", 1))
    text = make_sbom(f"{REGISTRY}/{DEPS_REPOSITORY}:{tag}", subject["digest"], BaseImage(base, base_digest), [],
                     [DebianPackage(n, v, "amd64", None) for n, v in debian.items()], {"ID": "debian", "VERSION_ID": "12"}, at)
    push_sbom(registry, DEPS_REPOSITORY, tag, text, subject)
    return tag


@pytest.fixture(scope="module")
def guarded(docker: DockerClient, testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    base = f"{REGISTRY}/pc-osguard-base-{uuid.uuid4().hex[:10]}:bookworm"
    docker.image.tag(testbed.python_image, base)
    try:
        docker.image.push(base, quiet=True)
        clone = Clone.create(tmp_path_factory.mktemp("osguard") / "repo", testbed)
        clone.env.update(INVOKE_DEPLOY_PYTHON_IMAGE=base)
        now = datetime.now(UTC)
        newer_tag = followed_image(docker, base, {"libzstd1": NEWER}, now)
        refused = clone.invoke("build-deps", "--json", timeout=DEPS_BUILD_TIMEOUT)
        building = re.search(r"^building deps image (\S+) on ", refused.stderr, re.MULTILINE)
        assert building, refused.describe()
        tags_after_refusal = deps_tags()
        older_tag = followed_image(docker, base, {"libzstd1": OLDER}, now + timedelta(seconds=1))
        pushed = clone.invoke("build-deps", "--json", timeout=DEPS_BUILD_TIMEOUT)
        yield Guarded(base, refused, building.group(1), tags_after_refusal, newer_tag, pushed, older_tag)
    finally:
        docker.image.remove(base)


def test_a_deps_image_with_older_debian_packages_is_refused_and_nothing_is_pushed(guarded: Guarded) -> None:
    line = one_error_line(guarded.refused)
    assert line.startswith(f"error: the deps image built here has older Debian packages than {guarded.newer_tag} "
                           f"(libzstd1 {NEWER} -> 1.5."), line
    assert "without cache: the base image or Debian archive this build used is older" in line, line
    # First from the cache, then again without it: the cache was not the cause here, the archive is.
    assert "its cache predates them: nothing was pushed; building again without cache" in guarded.refused.stderr
    assert guarded.refused.stdout == ""
    assert "making the SBOM" in guarded.refused.stderr  # refused after the SBOM was made from the built image...
    assert "pushed the SBOM" not in guarded.refused.stderr and "\npushing " not in guarded.refused.stderr  # ...before any push
    refused_tag = guarded.refused_image.rsplit(":", 1)[1]
    assert refused_tag.startswith("deps-")
    assert refused_tag not in guarded.tags_after_refusal and f"{refused_tag}.sbom" not in guarded.tags_after_refusal


def test_newer_debian_packages_are_pushed_and_the_change_is_said(guarded: Guarded) -> None:
    result = succeeded(guarded.pushed).json()
    assert result["image"] == guarded.refused_image  # the same build, pushed once nothing went back
    assert result["built"] is True and result["compared_with"] == guarded.older_tag
    assert {result["image"].rsplit(":", 1)[1], result["sbom"]} <= deps_tags()
    assert result["debian_downgrades"] == []
    libzstd1 = [c for c in result["debian_changes"] if c.startswith("libzstd1 ")]
    assert len(libzstd1) == 1 and libzstd1[0].startswith(f"libzstd1 {OLDER} -> 1.5."), result["debian_changes"]
    real = libzstd1[0].rsplit(" ", 1)[1]
    sbom = sbom_of(result["image"].rsplit(":", 1)[1])
    assert {c["name"]: c["version"] for c in sbom["components"] if c.get("purl", "").startswith("pkg:deb/")}["libzstd1"] == real
    assert f"the OS layer changed since {guarded.older_tag}: " in guarded.pushed.stderr

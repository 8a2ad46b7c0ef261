"""Reproducible images: the same commit built again without any build cache (as on a
fresh CI runner) gives the very same image digests, for the deps image and the app
image, and the app image shares every deps layer with the pushed deps image.

A second clone, at another path and checked out later, builds the same commit: file
times and the location of the checkout must not reach the images.
"""

import json
import subprocess

import pytest

from delivery.config.references import split_image_ref
from delivery.images.tags import APP_REPOSITORY, DEPS_REPOSITORY
from delivery.registry.client import Registry
from tests.integration.support.tasks_helpers import Clone, TaskRun
from tests.integration.support.testbed import Testbed

pytestmark = pytest.mark.docker
BUILD_TIMEOUT = 1200


def json_of(run: TaskRun) -> dict:
    assert run.returncode == 0, run.describe()
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def clones(tmp_path_factory: pytest.TempPathFactory, testbed: Testbed) -> tuple[Clone, Clone]:
    first = Clone.create(tmp_path_factory.mktemp("repro-a") / "repo", testbed)
    second_path = tmp_path_factory.mktemp("repro-b") / "checkout" / "elsewhere"
    subprocess.run(["git", "clone", "--quiet", str(first.path), str(second_path)], check=True)
    return first, Clone(second_path, testbed)


def test_same_commit_gives_same_digests_without_cache(clones: tuple[Clone, Clone], testbed: Testbed) -> None:
    first, second = clones
    # Both builds without cache, one after the other: the os stage's `apt-get upgrade` takes the Debian
    # updates of the moment, so a build from an older cache (or the registry's image, made earlier in
    # the run) may hold other OS packages; that is the refresh cycle's business (docs/images.md).
    deps = json_of(first.invoke("build-deps", "--force", "--no-cache", "--json", timeout=BUILD_TIMEOUT))
    app = json_of(first.invoke("build-app", "--no-cache", "--json", timeout=BUILD_TIMEOUT))
    assert "-dirty-" not in app["tag"]

    rebuilt_deps = json_of(second.invoke("build-deps", "--force", "--no-cache", "--json", timeout=BUILD_TIMEOUT))
    rebuilt_app = json_of(second.invoke("build-app", "--no-cache", "--json", timeout=BUILD_TIMEOUT))

    assert rebuilt_deps["built"] is True
    assert (rebuilt_deps["image"], rebuilt_deps["digest"]) == (deps["image"], deps["digest"])
    assert (rebuilt_app["image"], rebuilt_app["digest"]) == (app["image"], app["digest"])

    registry = Registry(testbed.registry)
    deps_layers = registry.manifest(DEPS_REPOSITORY, split_image_ref(deps["image"]).tag).layers
    app_layers = registry.manifest(APP_REPOSITORY, app["tag"]).layers
    assert app_layers[: len(deps_layers)] == deps_layers, "the app image must reuse every deps layer as is"
    assert 0 < len(app_layers) - len(deps_layers) <= 4, "only the code layers are added"

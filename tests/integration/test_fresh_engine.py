"""`invoke build-deps` on an engine with no build history (issue 19).

A fresh containerd-store engine from dockerbed (its data root on a tmpfs, so nothing of the
test bed's builder is in it: no images, no build cache, no content labels) builds the deps
image FROM the test bed's offline base, by digest, and pushes it. Before the base was read from
the registry, the build went FROM the local image by digest, and BuildKit 0.13 asked docker.io
for it on such an engine: this test failed at its first step ("failed to resolve source metadata
for docker.io/production-control/python-base:bookworm@sha256:...").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_on_whales import DockerClient

from dockerbed import BedError
from dockerbed.engines import Engine
from dockerbed.scratch import ScratchEngine
from tests.integration.support.tasks_helpers import REGISTRY, Clone, succeeded
from tests.integration.support.testbed import Testbed

pytestmark = pytest.mark.docker

BRIDGE, BRIDGE_CIDR = "pcfresh0", "10.213.40.1/24"  # a range of its own (pctb 7, 8, 11; faults 21; swarm 30)


@pytest.fixture(scope="module")
def fresh_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchEngine]:
    # A short root: the containerd socket below exec/ must fit in 107 bytes.
    root = Path("/tmp") / f"pcfresh-{uuid.uuid4().hex[:6]}"
    engine = ScratchEngine(Engine(root, "containerd", bridge=BRIDGE, ip_forward=False), BRIDGE_CIDR, "3g")
    try:
        engine.start()
    except BedError as error:
        pytest.fail(f"the fresh engine did not start: {error}", pytrace=False)
    try:
        yield engine
    finally:
        engine.close()


def test_build_deps_on_an_engine_with_no_build_history(fresh_engine: ScratchEngine, testbed: Testbed,
                                                       tmp_path: Path) -> None:  # fmt: skip
    fresh = DockerClient(host=fresh_engine.host)
    assert fresh.image.list() == [], "the fresh engine must start with no images"
    assert fresh.system.info().driver_status and "snapshotter" in str(fresh.system.info().driver_status)
    clone = Clone.create(tmp_path / "repo", testbed)
    # A registry namespace of its own: build-deps finds no deps tag there, so it really builds.
    namespace = f"{REGISTRY}/fresh-{uuid.uuid4().hex[:8]}"
    run = succeeded(clone.invoke("build-deps", "--json", timeout=900,
                                 env={"DOCKER_HOST": fresh_engine.host, "INVOKE_DEPLOY_REGISTRY": namespace}))
    report = json.loads(run.stdout)
    assert report["built"] is True, run.describe()
    assert report["base"].startswith(f"{testbed.python_image}@sha256:"), report["base"]
    assert report["image"].startswith(f"{namespace}/production-control-deps:deps-"), report["image"]

"""Session fixtures of the Docker integration tests: the test bed, images built once, app containers.

These tests never skip: without the test bed they fail and say `sudo scripts/testbed up`.
"""

import tomllib
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from python_on_whales import DockerClient

from tests.integration.support.appcontainer import AppContainer, remove_app, start_app
from tests.integration.support.faults_helpers import FaultBed, FaultBedUnavailable, fault_bed
from tests.integration.support.testbed import REPO_ROOT, BuiltImages, Testbed, TestbedUnavailable, build_target, connect_engine, read_testbed

if TYPE_CHECKING:  # imported when the swarm fixture runs: only the swarm tests need the swarm bed
    from tests.integration.support.swarm_helpers import SwarmBed


@pytest.fixture(scope="session")
def testbed() -> Testbed:
    try:
        return read_testbed()
    except TestbedUnavailable as error:
        message = str(error)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def docker(testbed: Testbed) -> DockerClient:
    try:
        return connect_engine(testbed)
    except TestbedUnavailable as error:
        message = str(error)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def app_version() -> str:
    """`[project].version` of the repository's pyproject.toml."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


@pytest.fixture(scope="session")
def images(docker: DockerClient, testbed: Testbed) -> Iterator[BuiltImages]:
    """Both targets, built once per session; runtime is FROM the locally loaded deps image."""
    run_id = uuid.uuid4().hex[:12]
    deps_tag = f"deps-test-{run_id}"
    deps_ref = f"pc-test-deps:{run_id}"
    runtime_ref = f"pc-test-runtime:{run_id}"
    try:
        deps = build_target(docker, testbed, REPO_ROOT, target="deps", tag=deps_ref, build_args={"DEPS_TAG": deps_tag})
        runtime = build_target(
            docker, testbed, REPO_ROOT, target="runtime", tag=runtime_ref, build_args={"DEPS_IMAGE": deps_ref}
        )
        yield BuiltImages(deps, deps_ref, deps_tag, runtime, runtime_ref)
    finally:
        docker.image.remove([ref for ref in (runtime_ref, deps_ref) if docker.image.exists(ref)], force=True)


@pytest.fixture(scope="session")
def app_network(docker: DockerClient) -> Iterator[str]:
    """A bridge network for the app containers, as compose gives each project."""
    network = docker.network.create(f"pc-test-{uuid.uuid4().hex[:12]}", labels={"production-control.test": "docker"})
    yield network.name
    docker.network.remove(network)


@pytest.fixture
def app_factory(
    docker: DockerClient, images: BuiltImages, app_network: str
) -> Iterator[Callable[..., AppContainer]]:
    """Start runtime containers (`start(role="all", site_name=None)`); all are removed afterwards."""
    started: list[AppContainer] = []

    def start(role: str = "all", site_name: str | None = None) -> AppContainer:
        app = start_app(docker, images.runtime_ref, app_network, role=role, site_name=site_name)
        started.append(app)
        return app

    yield start
    for app in started:
        remove_app(docker, app)


@pytest.fixture(scope="session")
def shared_app(docker: DockerClient, images: BuiltImages, app_network: str) -> Iterator[AppContainer]:
    """One `all`-role container for the tests that only look at it, started at first use.

    Started early in the session so that, by the cron test (last in the file), cron
    has usually passed a minute boundary already.
    """
    app = start_app(docker, images.runtime_ref, app_network, site_name=f"site-{uuid.uuid4().hex[:12]}")
    yield app
    remove_app(docker, app)


@pytest.fixture(scope="session")
def bed(request: pytest.FixtureRequest, testbed: Testbed, docker: DockerClient) -> FaultBed:
    """The fault tests' own registry, server engine and releases (see faults_helpers)."""
    try:
        return fault_bed(request.config, testbed)
    except FaultBedUnavailable as error:
        message = str(error)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def swarm(request: pytest.FixtureRequest, testbed: Testbed, docker: DockerClient) -> Iterator["SwarmBed"]:
    """The 3-node swarm bed (`scripts/testbed swarm up`), its clone and releases: once per session."""
    from tests.integration.support.swarm_helpers import SwarmBed

    bed = SwarmBed.create(testbed)
    yield bed
    bed.close()

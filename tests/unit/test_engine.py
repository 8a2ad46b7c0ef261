"""Engine facts parsed from docker's output, and docker errors turned into one line."""

import pytest
from python_on_whales.exceptions import DockerException

from delivery.engine import MIN_BUILDX, buildx_version, docker_errors, image_store, last_line
from delivery.errors import DeliveryError


@pytest.mark.parametrize(
    ("text", "version"),
    [
        pytest.param("github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3", (0, 13), id="debian-package"),
        pytest.param("v0.12.0", (0, 12), id="v-prefixed"),
        pytest.param("github.com/docker/buildx v0.19.3 48d6a39", (0, 19), id="upstream"),
        pytest.param("github.com/docker/buildx v1.2.0-rc1 abcdef0", (1, 2), id="release-candidate"),
        pytest.param("github.com/docker/buildx 0.10 abc", None, id="no-patch-number"),
        pytest.param("", None, id="empty"),
    ],
)
def test_buildx_version(text: str, version: tuple[int, int] | None) -> None:
    assert buildx_version(text) == version


@pytest.mark.parametrize(("text", "too_old"), [("v0.12.9", True), ("0.13.0", False), ("v1.0.0", False)])
def test_min_buildx_comparison(text: str, too_old: bool) -> None:
    assert (buildx_version(text) < MIN_BUILDX) is too_old


@pytest.mark.parametrize(
    ("driver_status", "store"),
    [
        pytest.param([["driver-type", "io.containerd.snapshotter.v1"]], "containerd", id="containerd-snapshotter"),
        pytest.param([("Backing Filesystem", "extfs"), ("Supports d_type", "true")], "overlay2", id="classic-overlay2"),
        pytest.param([["driver-type", "overlayfs"]], "overlay2", id="driver-type-not-containerd"),
        pytest.param([["driver-type"]], "overlay2", id="malformed-pair"),
        pytest.param([], "overlay2", id="empty"),
        pytest.param(None, "overlay2", id="none"),
    ],
)
def test_image_store(driver_status, store: str) -> None:
    assert image_store(driver_status) == store


def error(stdout: bytes | None = None, stderr: bytes | None = None, code: int = 1) -> DockerException:
    return DockerException(["docker", "image", "pull", "x"], code, stdout=stdout, stderr=stderr)


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        pytest.param(
            error(stderr=b"Using default tag\n\nError response from daemon: manifest unknown  \n\n"),
            "Error response from daemon: manifest unknown",
            id="last-non-empty-stderr-line",
        ),
        pytest.param(error(stdout=b"pulling\nfailed: no space left\n"), "failed: no space left", id="stdout-without-stderr"),
        pytest.param(error(stdout=b"out\n", stderr=b""), "out", id="empty-stderr-falls-back-to-stdout"),
        pytest.param(error(code=125), "exit code 125", id="nothing-captured"),
    ],
)
def test_last_line(exc: DockerException, line: str) -> None:
    assert last_line(exc) == line


def test_docker_errors_turns_a_docker_exception_into_one_line() -> None:
    with pytest.raises(DeliveryError) as caught:
        with docker_errors("pulling x on local", "retry later"):
            raise error(stderr=b"Error response from daemon: manifest unknown\n")
    assert str(caught.value) == "pulling x on local failed: Error response from daemon: manifest unknown (retry later)"
    assert isinstance(caught.value.__cause__, DockerException)


def test_docker_errors_hints_at_a_stopped_engine() -> None:
    reason = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
    with pytest.raises(DeliveryError) as caught:
        with docker_errors("listing images on local"):
            raise error(stderr=reason.encode())
    assert str(caught.value) == (
        f"listing images on local failed: {reason} "
        "(is the engine running? start it (`sudo scripts/testbed up`) or check --host)"
    )


def test_docker_errors_passes_other_exceptions_through() -> None:
    with pytest.raises(KeyError):
        with docker_errors("anything"):
            raise KeyError("x")

"""Which build path a builder takes (pure), and the builder facts it is chosen from."""

import pytest

from delivery.errors import DeliveryError
from delivery.images.builder import ENGINE, LAYOUT, TO_REPRODUCIBLE, BuilderInfo, choose_path, version_tuple


@pytest.mark.parametrize(
    ("driver", "status", "buildkit", "engine", "store", "path"),
    [
        pytest.param("docker", "running", "v0.0.0+unknown", "26.1.5+dfsg1", "containerd", LAYOUT, id="engine-containerd-store"),
        pytest.param("docker", "running", "v0.0.0+unknown", "26.1.5+dfsg1", "overlay2", ENGINE, id="engine-classic-store"),
        pytest.param("docker", "running", "v0.12.5", "24.0.7", "overlay2", ENGINE, id="old-engine-classic-store"),
        pytest.param("docker-container", "running", "v0.18.2", "26.1.5", "overlay2", LAYOUT, id="docker-container"),
        pytest.param("docker-container", "running", "", "28.0.1", "overlay2", LAYOUT, id="docker-container-version-unknown"),
        pytest.param("remote", "running", "v0.13.0", "26.1.5", "overlay2", LAYOUT, id="remote"),
        pytest.param("kubernetes", "running", "v0.15.1", "26.1.5", "containerd", LAYOUT, id="kubernetes"),
    ],
)
def test_choose_path(driver: str, status: str, buildkit: str, engine: str, store: str, path: str) -> None:
    assert choose_path("b", driver, status, buildkit, engine, store) == path


@pytest.mark.parametrize(
    ("driver", "status", "buildkit", "engine", "store", "fix"),
    [
        pytest.param("docker", "running", "v0.12.5", "25.0.3", "containerd", "upgrade Docker Engine to 26", id="old-engine-containerd-store"),
        pytest.param(
            "docker-container", "running", "v0.12.5", "26.1.5", "overlay2", "docker buildx rm b && docker buildx create --use", id="old-buildkit"
        ),
        pytest.param("docker-container", "error", "", "26.1.5", "overlay2", "docker buildx inspect --bootstrap b", id="broken-builder"),
        pytest.param("cloud", "running", "v0.18.0", "26.1.5", "overlay2", "docker buildx use default", id="unknown-driver"),
    ],
)
def test_builders_without_a_path_name_the_fix(driver: str, status: str, buildkit: str, engine: str, store: str, fix: str) -> None:
    with pytest.raises(DeliveryError) as raised:
        choose_path("b", driver, status, buildkit, engine, store)
    message = str(raised.value)
    assert fix in message and "\n" not in message


@pytest.mark.parametrize(
    ("text", "version"),
    [("v0.13.1", (0, 13)), ("26.1.5+dfsg1", (26, 1)), ("v0.0.0+unknown", None), ("", None), (None, None), ("25.0", (25, 0))],
)
def test_version_tuple(text: str | None, version: tuple[int, int] | None) -> None:
    assert version_tuple(text) == version


def test_engine_path_says_what_it_loses_and_how_to_get_the_reproducible_one() -> None:
    info = BuilderInfo("default", "docker", "running", "bundled with Engine 26.1.5", "26.1.5", "overlay2", ENGINE)
    assert "docker push" in info.summary() and "not byte-reproducible" in info.summary()
    report = info.as_dict()
    assert (report["reproducible"], report["to_reproducible"]) == (False, TO_REPRODUCIBLE)
    assert "containerd-snapshotter" in TO_REPRODUCIBLE and "docker buildx create --use" in TO_REPRODUCIBLE
    layout = BuilderInfo("ci", "docker-container", "running", "v0.18.2", "28.0.1", "overlay2", LAYOUT)
    assert layout.as_dict()["to_reproducible"] is None and "reproducible" in layout.summary()

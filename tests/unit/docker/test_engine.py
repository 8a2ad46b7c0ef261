"""Engine facts parsed from docker's output, and docker errors turned into one line."""

import os
import subprocess
from pathlib import Path

import pytest
from python_on_whales.exceptions import DockerException

from delivery.config.hosts import parse_host
from delivery.docker.engine import (
    MIN_BUILDX,
    buildx_version,
    clean_environment,
    connect,
    docker_errors,
    image_store,
    last_line,
    without_shell_environment,
)
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


SHELL = {"PATH": "/usr/bin:/bin", "HOME": "/home/op", "DOCKER_HOST": "ssh://deploy@prod-1", "DOCKER_CONFIG": "/tmp/cfg",
         "SSH_AUTH_SOCK": "/run/agent", "BLUE_TAG": "0.0.1-000000000000", "APP_TAG": "0.0.1-000000000000",
         "REGISTRY": "evil.example.com", "CRON_SCHEDULE": "* * * * *\n* * * * * root sh", "COMPOSE_PROFILES": "x",
         "DOCKER_DEFAULT_PLATFORM": "linux/arm64", "REGISTRY_PASSWORD": "s3cret"}


def test_clean_environment_keeps_path_home_docker_and_ssh_agent_only() -> None:
    assert clean_environment(SHELL) == {"PATH": "/usr/bin:/bin", "HOME": "/home/op", "DOCKER_HOST": "ssh://deploy@prod-1",
                                        "DOCKER_CONFIG": "/tmp/cfg", "SSH_AUTH_SOCK": "/run/agent"}


def test_clean_environment_adds_what_the_toolkit_sets() -> None:
    assert clean_environment(SHELL, {"APP_TAG": "1.0.0-abcdef123456"})["APP_TAG"] == "1.0.0-abcdef123456"


def test_without_shell_environment_unsets_names_never_passes_values() -> None:
    argv = without_shell_environment(["docker", "compose"], SHELL)
    assert argv[0] == "env" and argv[-2:] == ["docker", "compose"]
    unset = set(argv[2:-2:2])
    assert unset == {"BLUE_TAG", "APP_TAG", "REGISTRY", "CRON_SCHEDULE", "COMPOSE_PROFILES", "DOCKER_DEFAULT_PLATFORM", "REGISTRY_PASSWORD"}
    assert "s3cret" not in " ".join(argv)


def test_without_shell_environment_keeps_the_toolkits_own_variables() -> None:
    assert "APP_TAG" not in without_shell_environment(["docker"], SHELL, own=("APP_TAG",))


def test_an_exported_blue_tag_does_not_reach_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """What python-on-whales does (this process's environment, merged) behind the prefix: BLUE_TAG is gone."""
    monkeypatch.setenv("BLUE_TAG", "0.0.1-000000000000")
    argv = without_shell_environment(["env"], os.environ)
    seen = dict(line.split("=", 1) for line in subprocess.run(argv, env=dict(os.environ), capture_output=True, text=True,
                                                                 check=True).stdout.splitlines() if "=" in line)
    assert "BLUE_TAG" not in seen and seen["PATH"] == os.environ["PATH"]


def test_compose_clients_run_docker_behind_the_clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BLUE_TAG", "0.0.1-000000000000")
    monkeypatch.setattr("delivery.docker.engine.require_cli", lambda: None)
    compose = connect(parse_host("local"), compose_files=[tmp_path / "docker-compose.yml"], compose_env_file=tmp_path / "0.env")
    argv = [str(part) for part in compose.client_config.docker_compose_cmd]
    assert Path(argv[0]).name == "env" and "BLUE_TAG" in argv[argv.index("-u") :] and "--env-file" in argv
    plain = connect(parse_host("local"))
    assert [str(part) for part in plain.client_config.client_call] == ["docker"]

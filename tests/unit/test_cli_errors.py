"""Errors users meet before any Docker work: one `error:` line, exit 1, no traceback.

The tasks run for real (`invoke` in a subprocess) with a PATH that lacks the
docker CLI, or that holds a stand-in `docker` without the buildx or compose v2
plugins (as on a machine with only docker-compose v1).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVOKE = Path(sys.executable).with_name("invoke")

FAKE_DOCKER = """#!/bin/sh
case "$1 $2" in
  "buildx version") echo "docker: 'buildx' is not a docker command." >&2; exit 1 ;;
  "compose version") echo "docker: 'compose' is not a docker command." >&2; exit 1 ;;
  *) echo "fake docker: $*" >&2; exit 1 ;;
esac
"""


def run_invoke(*args: str, path: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_DEPLOY_")}
    env.update(PATH=path, HOME=str(tmp_path), INVOKE_DEPLOY_REGISTRY="127.0.0.1:9")
    return subprocess.run([str(INVOKE), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and expected in lines[-1], result.stderr


@pytest.fixture
def no_docker_path(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "uv"):
        for directory in os.environ["PATH"].split(os.pathsep):
            if (Path(directory) / tool).exists():
                (bin_dir / tool).symlink_to(Path(directory) / tool)
                break
    return str(bin_dir)


@pytest.fixture
def fake_docker_path(no_docker_path: str) -> str:
    docker = Path(no_docker_path) / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    return no_docker_path


@pytest.mark.parametrize("task", [["build-app"], ["status"], ["deploy", "--version", "1.0.0-abcdef123456"]], ids=" ".join)
def test_no_docker_cli(task: list[str], no_docker_path: str, tmp_path: Path) -> None:
    assert_one_line_error(run_invoke(*task, path=no_docker_path, tmp_path=tmp_path), "the docker CLI is not on PATH")


def test_no_buildx_plugin(fake_docker_path: str, tmp_path: Path) -> None:
    assert_one_line_error(run_invoke("build-app", path=fake_docker_path, tmp_path=tmp_path), "docker buildx is missing")


def test_compose_v1_only(fake_docker_path: str, tmp_path: Path) -> None:
    result = run_invoke("status", path=fake_docker_path, tmp_path=tmp_path)
    assert_one_line_error(result, "docker compose v2 is missing (docker-compose v1 is not supported)")


def test_engine_not_running(tmp_path: Path) -> None:
    sock = tmp_path / "no-engine.sock"
    result = run_invoke("status", "--host", f"unix://{sock}", path=os.environ["PATH"], tmp_path=tmp_path)
    assert_one_line_error(result, "is not reachable")


def test_invalid_host_url(tmp_path: Path) -> None:
    result = run_invoke("status", "--host", "http://prod-1", path=os.environ["PATH"], tmp_path=tmp_path)
    assert_one_line_error(result, "invalid host 'http://prod-1': use unix:///path, ssh://user@host, tcp://host:port")


def test_invalid_bump_part_changes_nothing(tmp_path: Path) -> None:
    before = (REPO / "pyproject.toml").read_bytes()
    result = run_invoke("bump", "banana", path=os.environ["PATH"], tmp_path=tmp_path)
    assert_one_line_error(result, "invalid bump part 'banana': use major, minor or patch")
    assert (REPO / "pyproject.toml").read_bytes() == before

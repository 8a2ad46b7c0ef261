"""Connecting to Docker engines, checking what they can do, and turning their errors into one line.

This is the one place that creates python-on-whales clients; everything that
talks to an engine gets its client from `connect`. A client for the project's compose
file runs docker with a clean environment (`without_shell_environment`): compose gives
an exported variable precedence over --env-file, so nothing exported in the operator's
shell (BLUE_TAG, APP_TAG, REGISTRY, CRON_SCHEDULE, COMPOSE_PROFILES...) changes what runs.

A task run that logs the docker CLI in itself (deploy.registry_user) does so in a private
config directory made for that run (`private_docker_config`): every client `connect` makes
meanwhile, compose's included, runs docker with `--config` pointing there, and the directory
goes with the run, so the password never stays in the operator's ~/.docker/config.json.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.config.hosts import Host
from delivery.config.platforms import engine_platform
from delivery.errors import DeliveryError

MIN_BUILDX = (0, 13)


@dataclass(frozen=True)
class EngineInfo:
    """What deploy and build need to know about an engine."""

    host: str
    server_version: str
    image_store: str  # "containerd" (any blob present is skipped) or "overlay2" (classic, ChainID)
    platform: str = ""  # what it pulls and runs: linux/amd64, linux/arm64 (delivery/config/platforms.py)


def connect(
    host: Host,
    *,
    compose_files: Sequence[Path] = (),
    compose_env_file: Path | None = None,
    compose_project: str | None = None,
) -> DockerClient:
    """A client for `host`, optionally set up for the project's compose file (then with a clean environment);
    within `private_docker_config`, with that directory as its docker CLI config."""
    require_cli()
    return DockerClient(
        config=str(_private_configs[-1]) if _private_configs else None,
        client_call=without_shell_environment(["docker"], os.environ) if compose_files else ["docker"],
        host=host.url,
        context=host.context,
        compose_files=list(compose_files),
        compose_env_files=[compose_env_file] if compose_env_file else [],
        compose_project_name=compose_project,
    )


# The private docker CLI config directories of this task run, innermost last (private_docker_config).
_private_configs: list[Path] = []
PRIVATE_CONFIG_PREFIX = "production-control-docker-config-"


def private_config() -> Path | None:
    """The private docker CLI config directory clients get now, None outside `private_docker_config`."""
    return _private_configs[-1] if _private_configs else None


@contextlib.contextmanager
def private_docker_config(user_dir: Path, document: Mapping[str, Any]) -> Iterator[Path]:
    """Within: every client `connect` makes uses a private docker CLI config directory, made for this run.

    The directory (mode 0700, under the temporary directory) holds `document` as its config.json (0600)
    and links every other entry of the user's config directory `user_dir` (contexts, cli-plugins, buildx
    builders, TLS certificates), so the CLI works as it does with the user's own. It is removed on the way
    out, after an error or a signal (delivery/interrupts.py) too; a SIGKILL leaves it behind.
    """
    with tempfile.TemporaryDirectory(prefix=PRIVATE_CONFIG_PREFIX) as tmp:
        directory = Path(tmp)
        if user_dir.is_dir():
            for entry in sorted(user_dir.iterdir()):
                if entry.name != "config.json":
                    (directory / entry.name).symlink_to(entry.absolute())
        descriptor = os.open(directory / "config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as f:
            json.dump(document, f)
        _private_configs.append(directory)
        try:
            yield directory
        finally:
            _private_configs.remove(directory)


# What a docker command run for the project keeps of this process's environment: where programs
# and the CLI's config are, the engine it talks to (DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG, TLS),
# and the SSH agent of ssh:// hosts. DOCKER_DEFAULT_PLATFORM is dropped: the deploy picks the platform.
# The bounds of docker-compose.yml (memory, logs) are overridable from the environment: they bound how
# a release runs, never which one.
COMPOSE_BOUNDS = frozenset({"APP_MEMORY_LIMIT", "PROXY_MEMORY_LIMIT", "LOG_MAX_SIZE", "LOG_MAX_FILE", "LOG_TMPFS_SIZE",
                            "LOG_FILE_MAX_KB"})
KEPT_NAMES = frozenset({"PATH", "HOME", "SSH_AUTH_SOCK"}) | COMPOSE_BOUNDS
DROPPED_DOCKER_NAMES = frozenset({"DOCKER_DEFAULT_PLATFORM"})


def kept_in_clean_environment(name: str) -> bool:
    """Pure: whether a docker command run for the project sees the environment variable `name`."""
    return name in KEPT_NAMES or (name.startswith("DOCKER_") and name not in DROPPED_DOCKER_NAMES)


def clean_environment(environ: Mapping[str, str], own: Mapping[str, str] | None = None) -> dict[str, str]:
    """Pure: the environment such a command runs with: the kept part of `environ`, plus what the toolkit sets (`own`)."""
    return {name: value for name, value in environ.items() if kept_in_clean_environment(name)} | dict(own or {})


def without_shell_environment(argv: Sequence[str], environ: Mapping[str, str], own: Sequence[str] = ()) -> list[str]:
    """Pure: `argv` behind `env -u NAME...`, which removes every variable of `environ` that is not kept.

    python-on-whales runs docker with this process's whole environment (plus what the toolkit passes,
    whose names are `own`): only names go on the command line, never values.
    """
    unset = sorted(name for name in environ if not kept_in_clean_environment(name) and name not in own)
    return ["env", *(arg for name in unset for arg in ("-u", name)), *argv]


def volume_labels(docker: DockerClient, *names: str) -> list[dict[str, str]]:
    """The labels of the named volumes, in order (raw `docker volume inspect`: the deploy lock and history
    live in volume labels). Raises DockerException when one of them does not exist."""
    found = json.loads(str(run([*docker.docker_cmd, "volume", "inspect", *names])))
    return [volume.get("Labels") or {} for volume in found]


def require_cli() -> None:
    if shutil.which("docker") is None:
        raise DeliveryError("the docker CLI is not on PATH: install Docker (or run `sudo scripts/testbed install`)")


def last_line(exc: DockerException) -> str:
    """The most telling line of a failed docker command (its last non-empty stderr line)."""
    text = (exc.stderr or exc.stdout or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {exc.return_code}"


@contextlib.contextmanager
def docker_errors(action: str, hint: str = "") -> Iterator[None]:
    """Turn a failed docker call into a one-line DeliveryError: what failed, why, what to do."""
    try:
        yield
    except DockerException as exc:
        reason = last_line(exc)
        if "Cannot connect to the Docker daemon" in reason or "connection refused" in reason.lower() and "docker.sock" in reason:
            hint = hint or "is the engine running? start it (`sudo scripts/testbed up`) or check --host"
        raise DeliveryError(f"{action} failed: {reason}" + (f" ({hint})" if hint else "")) from exc


def check_engine(docker: DockerClient, host: Host, *, need_buildx: bool = False, need_compose: bool = False) -> EngineInfo:
    """Fail early, with what to do, when the CLI plugins or the engine are missing."""
    if need_buildx:
        try:
            text = docker.buildx.version()
        except DockerException as exc:
            raise DeliveryError(
                "docker buildx is missing: install the buildx plugin (>= 0.13), e.g. `sudo scripts/testbed install`"
            ) from exc
        version = buildx_version(str(text))
        if version is not None and version < MIN_BUILDX:
            raise DeliveryError(f"docker buildx {'.'.join(map(str, version))} is too old: install buildx >= 0.13")
    if need_compose:
        try:
            docker.compose.version()
        except DockerException as exc:
            raise DeliveryError(
                "docker compose v2 is missing (docker-compose v1 is not supported): install the compose plugin"
            ) from exc
    try:
        info = docker.system.info()
    except DockerException as exc:
        raise DeliveryError(
            f"the Docker engine at {host.label} is not reachable: {last_line(exc)} "
            "(start it with `sudo scripts/testbed up`, or check --host)"
        ) from exc
    return EngineInfo(host=host.label, server_version=str(info.server_version), image_store=image_store(info.driver_status),
                      platform=engine_platform(info.os_type, info.architecture))


def buildx_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from `docker buildx version` output, or None when it prints no version."""
    match = re.search(r"\bv?(\d+)\.(\d+)\.\d+", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def read_info(docker: DockerClient) -> dict[str, Any]:
    """`docker info` as the engine answers it (its JSON: Swarm, DriverStatus, ...); DockerException when it does not."""
    info = json.loads(str(run([*docker.docker_cmd, "info", "--format", "{{json .}}"])))
    return info if isinstance(info, dict) else {}


def image_layers(docker: DockerClient) -> list[tuple[str, list[str], list[str]]]:
    """(image id, repo digests, rootfs diff ids) of every image on the engine: what release/pullreport.host_layers
    reads; DockerException when the engine does not list them."""
    return [(str(image.id), list(image.repo_digests or []), list(image.root_fs.layers or [])) for image in docker.image.list()]


def image_store(driver_status: Sequence[Sequence[str]] | None) -> str:
    """'containerd' when the engine uses the containerd image store, else 'overlay2' (classic).

    `driver_status`: `docker info`'s DriverStatus (python-on-whales' `driver_status`, or read_info()["DriverStatus"])."""
    for pair in driver_status or ():
        if len(pair) == 2 and pair[0] == "driver-type" and "containerd" in pair[1]:
            return "containerd"
    return "overlay2"


def engine_api(docker: DockerClient, path: str, timeout: float = 120.0) -> Any:
    """GET `path` of the engine API (JSON), through the docker CLI's own transport.

    `docker system dial-stdio` connects stdin/stdout to the engine, whatever the host
    is (socket, ssh://, tcp://, context), so this reaches every host the CLI reaches.
    Used where the CLI only prints rounded figures (e.g. `docker system df`). Its stdin
    stays open until the answer is read: the engine cancels a request whose client hung up.
    """
    request = f"GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: production-control\r\nConnection: close\r\n\r\n"
    argv = [str(part) for part in docker.client_config.docker_cmd] + ["system", "dial-stdio"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(request.encode())
        proc.stdin.flush()
        response = http.client.HTTPResponse(_Pipe(proc.stdout))  # type: ignore[arg-type]
        try:
            response.begin()
            body = response.read()
        except (http.client.HTTPException, OSError) as exc:
            proc.kill()
            stderr = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace").strip().splitlines()
            reason = stderr[-1] if stderr else (f"no answer within {timeout:.0f}s" if not timer.is_alive() else type(exc).__name__)
            raise DeliveryError(f"the engine API call {path} failed: {reason}") from None
    finally:
        timer.cancel()
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if response.status != 200:
        raise DeliveryError(f"the engine API call {path} failed: HTTP {response.status} {body.decode(errors='replace').strip()}")
    return json.loads(body)


class _Pipe:
    """A pipe, shaped like the socket http.client.HTTPResponse reads from."""

    def __init__(self, stream: IO[bytes]):
        self._stream = stream

    def makefile(self, mode: str) -> IO[bytes]:
        return self._stream


def disk_usage(docker: DockerClient) -> int:
    """Bytes the engine's images take on disk, as `docker system df` counts them (its LayersSize)."""
    return int(engine_api(docker, "/system/df?type=image").get("LayersSize") or 0)

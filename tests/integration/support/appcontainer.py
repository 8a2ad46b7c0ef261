"""Running the app image as compose does, and looking inside the running container."""

import json
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from python_on_whales import Container, DockerClient
from python_on_whales.exceptions import DockerException

from tests.integration.support.testbed import REPO_ROOT

POLL_INTERVAL = 0.2
HEALTHZ_TIMEOUT = 30.0
PORT_TRIES = 3

T = TypeVar("T")

# The image has no `ps`: list processes from /proc with the image's own Python.
LIST_PROCESSES = r"""
import json, os
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        continue
    found.append({"pid": int(pid), "argv": argv,
                  "uids": [int(u) for u in status["Uid"].split()],
                  "cap_eff": status["CapEff"]})
print(json.dumps(found))
"""


@dataclass(frozen=True)
class ComposeHardening:
    """The run options of a docker-compose.yml service of the app image that change what its container may do."""

    init: bool
    read_only: bool
    tmpfs: tuple[str, ...]
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    security_opt: tuple[str, ...]

    @classmethod
    def from_compose(cls, compose_file: Path = REPO_ROOT / "docker-compose.yml", service_name: str = "web-blue") -> "ComposeHardening":
        service = yaml.safe_load(compose_file.read_text())["services"][service_name]
        return cls(
            init=bool(service.get("init", False)),
            read_only=bool(service.get("read_only", False)),
            tmpfs=tuple(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", entry) for entry in service.get("tmpfs", ())),  # sizes' defaults
            cap_drop=tuple(service.get("cap_drop", ())),
            cap_add=tuple(service.get("cap_add", ())),
            security_opt=tuple(service.get("security_opt", ())),
        )


@dataclass(frozen=True)
class AppContainer:
    """One running app container, its data volume and where its web app answers."""

    container: Container
    volume: str
    base_url: str
    site_name: str

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base_url + path, timeout=5.0)


@dataclass(frozen=True)
class Process:
    """A process inside a container, from /proc."""

    pid: int
    argv: tuple[str, ...]
    uids: tuple[int, ...]  # real, effective, saved, filesystem
    cap_eff: str

    @property
    def is_web_app(self) -> bool:
        return "production_control.web:app" in self.argv

    @property
    def is_cron(self) -> bool:
        return bool(self.argv) and self.argv[0].rsplit("/", 1)[-1] == "cron"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_app(
    docker: DockerClient, image: str, network: str, *, role: str = "all", site_name: str | None = None,
    platform: str | None = None,
) -> AppContainer:
    """Run `image` like docker-compose.yml: its init, read-only root, tmpfs, capabilities and
    security options, a data volume, SITE_NAME, and cron every minute.

    On `network`, a bridge of its own like compose's project network (not docker0).

    No restart policy, so a container that exits stays exited for the test to inspect.
    `platform` (linux/arm64) runs another platform's image, under QEMU emulation.
    """
    hardening = ComposeHardening.from_compose()
    suffix = uuid.uuid4().hex[:12]
    site_name = site_name or f"site-{suffix}"
    volume = docker.volume.create(f"pc-test-data-{suffix}").name
    for attempt in range(1, PORT_TRIES + 1):
        port = free_port()
        name = f"pc-test-{role}-{suffix}-{attempt}"
        try:
            container = docker.container.run(
                image,
                [role],
                name=name,
                detach=True,
                init=hardening.init,
                read_only=hardening.read_only,
                tmpfs=hardening.tmpfs,
                cap_drop=hardening.cap_drop,
                cap_add=hardening.cap_add,
                security_options=hardening.security_opt,
                publish=[(f"127.0.0.1:{port}", 8000)],
                envs={"SITE_NAME": site_name, "CRON_SCHEDULE": "* * * * *"},
                volumes=[(volume, "/data")],
                networks=[network],
                labels={"production-control.test": "docker"},
                platform=platform,
            )
        except DockerException as error:  # the port was taken between free_port() and run
            if docker.container.exists(name):  # created, but could not start
                docker.container.remove(name, force=True, volumes=True)
            if attempt == PORT_TRIES or "port is already allocated" not in str(error):
                docker.volume.remove(volume)
                raise
            continue
        assert isinstance(container, Container)
        return AppContainer(container, volume, f"http://127.0.0.1:{port}", site_name)
    raise AssertionError("unreachable")


def remove_app(docker: DockerClient, app: AppContainer) -> None:
    """Remove the container, its anonymous volumes and its data volume."""
    docker.container.remove(app.container, force=True, volumes=True)
    docker.volume.remove(app.volume)


def describe(docker: DockerClient, container: Container) -> str:
    """State and logs of a container, for assertion messages."""
    state = docker.container.inspect(container).state
    return f"status={state.status} exit_code={state.exit_code}\n--- docker logs ---\n{docker.container.logs(container)}"


def wait_until(check: Callable[[], T | None], timeout: float, what: str, on_timeout: Callable[[], str] = str) -> T:
    """Poll `check` until it returns something other than None (or False); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s\n{on_timeout()}")
        time.sleep(POLL_INTERVAL)


def wait_for_healthz(docker: DockerClient, app: AppContainer, timeout: float = HEALTHZ_TIMEOUT) -> dict[str, Any]:
    """The JSON of the first 200 from /healthz; fails at once if the container stops."""
    last_error = ""

    def healthy() -> dict[str, Any] | None:
        nonlocal last_error
        if not docker.container.inspect(app.container).state.running:
            raise AssertionError(f"the container stopped before /healthz answered\n{describe(docker, app.container)}")
        try:
            response = app.get("/healthz")
        except httpx.HTTPError as error:
            last_error = repr(error)
            return None
        if response.status_code != 200:
            last_error = f"{response.status_code} {response.text}"
            return None
        return dict(response.json())

    return wait_until(
        healthy,
        timeout,
        f"GET {app.base_url}/healthz answering 200",
        lambda: f"last answer: {last_error}\n{describe(docker, app.container)}",
    )


def wait_for_exit(docker: DockerClient, container: Container, timeout: float) -> int:
    """The exit code of `container` once it has stopped."""

    def exit_code() -> int | None:
        state = docker.container.inspect(container).state
        return None if state.running else state.exit_code

    return wait_until(exit_code, timeout, f"container {container.name} exiting", lambda: describe(docker, container))


def processes(docker: DockerClient, container: Container) -> list[Process]:
    """Every process in the container except the one listing them."""
    listed = json.loads(str(docker.container.execute(container, ["python3", "-c", LIST_PROCESSES])))
    return [Process(p["pid"], tuple(p["argv"]), tuple(p["uids"]), p["cap_eff"]) for p in listed]


def read_file(docker: DockerClient, container: Container, path: str) -> str:
    """The text of a file inside the container."""
    return str(docker.container.execute(container, ["cat", path]))

"""The servers a chain of releases is pulled on: one engine per image store, empty at the start.

Two ways to get empty servers:

- scratch (default): a throwaway dockerd per image store, started for one chain
  with the same daemon.json as the test bed's server engines (scripts/testbed),
  in a temporary data root on a bridge of its own, and stopped and deleted
  afterwards. The test bed's own servers, and whatever runs on them, are left alone.
  (Never `--bridge none`: a dockerd started so deletes the host's docker0,
  the builder engine's bridge.)
- testbed: the test bed's server engines ($TESTBED_SERVER_HOST and
  $TESTBED_SERVER_CONTAINERD_HOST), emptied by removing every image. Refused when
  a server runs containers, since those keep their layers (and are someone's).
"""
from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.engine import image_store
from benchmarks.workspace import BenchmarkError

STORES = ("overlay2", "containerd")
# As scripts/testbed writes them for its server engines.
DAEMON_CONFIG = {
    "overlay2": {"storage-driver": "overlay2", "features": {"containerd-snapshotter": False}},
    "containerd": {"features": {"containerd-snapshotter": True}},
}


@dataclass(frozen=True)
class Server:
    store: str  # "overlay2" (classic image store) or "containerd"
    host: str  # docker host URL
    docker: DockerClient


# One bridge per scratch engine, next to the test bed's (pctb0 10.213.7.0/24, pctb1 10.213.8.0/24).
SCRATCH_BRIDGES = {"overlay2": ("pcb-overlay2", "10.213.9.1/24"), "containerd": ("pcb-containerd", "10.213.10.1/24")}


def dockerd_argv(root: Path, bridge: str, iptables: bool = False) -> list[str]:
    """Pure: a dockerd confined to `root` and its own bridge; it leaves sysctls alone, and iptables
    too unless `iptables` (containers that talk to each other by name need it: compose networks'
    embedded DNS works through iptables rules in each container's namespace)."""
    return [
        "dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
        "-H", f"unix://{root / 'docker.sock'}", "--pidfile", str(root / "docker.pid"),
        "--config-file", str(root / "daemon.json"), "--bridge", bridge,
        *(() if iptables else ("--iptables=false", "--ip6tables=false")), "--ip-forward=false",
    ]


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchmarkError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()} (scratch servers need root)")


def _bridge_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def check_store(server: Server) -> None:
    found = image_store(server.docker.system.info().driver_status)
    if found != server.store:
        raise BenchmarkError(f"{server.host} uses the {found} image store, expected {server.store}")


@contextlib.contextmanager
def scratch(stores: tuple[str, ...], iptables: bool = False) -> Iterator[list[Server]]:
    """Start one empty dockerd per store; stop them (by their process) and delete their data after.
    `iptables`: for servers that run containers talking to each other (see dockerd_argv)."""
    if shutil.which("dockerd") is None:
        raise BenchmarkError("dockerd is not installed: run `sudo scripts/testbed up`")
    top = Path(tempfile.mkdtemp(prefix="pcb-", dir="/tmp"))  # short: socket paths are limited to 107 bytes
    started: list[tuple[subprocess.Popen, Path]] = []
    bridges: list[str] = []
    servers: list[Server] = []
    try:
        for store in stores:
            root = top / store
            root.mkdir()
            (root / "daemon.json").write_text(json.dumps(DAEMON_CONFIG[store]))
            bridge, cidr = SCRATCH_BRIDGES[store]
            if not _bridge_exists(bridge):
                _ip("link", "add", bridge, "type", "bridge")
                bridges.append(bridge)
                _ip("addr", "add", cidr, "dev", bridge)
            _ip("link", "set", bridge, "up")
            log = (root / "dockerd.log").open("wb")
            process = subprocess.Popen(dockerd_argv(root, bridge, iptables), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
            started.append((process, root))
            server = Server(store, f"unix://{root / 'docker.sock'}", DockerClient(host=f"unix://{root / 'docker.sock'}"))
            _wait_up(server, process, root)
            check_store(server)
            servers.append(server)
        yield servers
    finally:
        for server in servers:
            _remove_containers_and_networks(server)
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for bridge in bridges:
            subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
        if _mounts_under(top):
            print(f"warning: mounts remain under {top}; left in place", flush=True)
        else:
            shutil.rmtree(top, ignore_errors=True)


def _remove_containers_and_networks(server: Server) -> None:
    """What ran on a scratch engine: the bridge of a network outlives its engine (and holds an address range)."""
    with contextlib.suppress(DockerException):
        containers = server.docker.container.list(all=True)
        if containers:
            server.docker.container.remove(containers, force=True, volumes=True)
        server.docker.network.prune()


def _wait_up(server: Server, process: subprocess.Popen, root: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (root / "dockerd.log").read_text(errors="replace").strip().splitlines()[-1:]
            hint = " (scratch servers need root, like scripts/testbed; or use --servers testbed)"
            raise BenchmarkError(f"dockerd for the {server.store} store exited: {tail}{hint}")
        try:
            server.docker.system.info()
            return
        except DockerException:
            time.sleep(0.2)
    raise BenchmarkError(f"dockerd for the {server.store} store did not answer in 60 s (log: {root / 'dockerd.log'})")


def _mounts_under(path: Path) -> bool:
    with open("/proc/mounts") as mounts:
        return any(line.split()[1].startswith(str(path)) for line in mounts if len(line.split()) > 1)


@contextlib.contextmanager
def testbed(hosts: dict[str, str], stores: tuple[str, ...]) -> Iterator[list[Server]]:
    """The test bed's server engines, emptied of every image first."""
    servers = []
    for store in stores:
        host = hosts[store]
        server = Server(store, host, DockerClient(host=host))
        try:
            check_store(server)
        except DockerException as exc:
            raise BenchmarkError(f"the test bed server {host} is not reachable: run `sudo scripts/testbed up`") from exc
        reset(server)
        servers.append(server)
    yield servers


def reset(server: Server) -> None:
    """Remove every image from a server, so the next pull starts from nothing."""
    containers = server.docker.container.list(all=True)
    if containers:
        names = ", ".join(c.name for c in containers[:5])
        raise BenchmarkError(
            f"{server.host} has containers ({names}); their layers would stay and skew the first deploy. "
            "Remove them, or use --servers scratch (the default)"
        )
    images = server.docker.image.list(all=True)
    if images:
        server.docker.image.remove([image.id for image in images], force=True)
    server.docker.image.prune(all=True)
    if server.docker.image.list(all=True):
        raise BenchmarkError(f"{server.host} still has images after removing them all")

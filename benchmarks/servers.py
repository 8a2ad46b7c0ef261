"""The servers a chain of releases is pulled on: one engine per image store, empty at the start.

Two ways to get empty servers:

- scratch (default): a throwaway engine per image store (dockerbed.scratch), started for one chain
  with the test bed's daemon.json for that store, in a temporary data root on a bridge of
  its own, and removed afterwards. The test bed's own servers, and whatever runs on them, are left alone.
- testbed: the test bed's server engines ($TESTBED_SERVER_HOST and
  $TESTBED_SERVER_CONTAINERD_HOST), emptied by removing every image. Refused when
  a server runs containers, since those keep their layers (and are someone's).
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from benchmarks.workspace import BenchmarkError
from delivery.docker.engine import image_store
from dockerbed import BedError
from dockerbed.engines import Engine
from dockerbed.scratch import ScratchEngine, mounts_under


@dataclass(frozen=True)
class Server:
    store: str  # "overlay2" (classic image store) or "containerd"
    host: str  # docker host URL
    docker: DockerClient


# One bridge per scratch engine, next to the test bed's (pctb0 10.213.7.0/24, pctb1 10.213.8.0/24).
SCRATCH_BRIDGES = {"overlay2": ("pcb-overlay2", "10.213.9.1/24"), "containerd": ("pcb-containerd", "10.213.10.1/24")}


def scratch_engine(root: Path, store: str, iptables: bool = False) -> ScratchEngine:
    """Pure: the scratch engine of `store`: it leaves sysctls alone, and iptables too unless `iptables`
    (containers that talk to each other by name need it: compose networks' embedded DNS works
    through iptables rules in each container's namespace)."""
    bridge, cidr = SCRATCH_BRIDGES[store]
    return ScratchEngine(Engine(root, store, bridge=bridge, iptables=iptables, ip_forward=False), cidr)


def check_store(server: Server) -> None:
    found = image_store(server.docker.system.info().driver_status)
    if found != server.store:
        raise BenchmarkError(f"{server.host} uses the {found} image store, expected {server.store}")


@contextlib.contextmanager
def scratch(stores: tuple[str, ...], iptables: bool = False) -> Iterator[list[Server]]:
    """Start one empty engine per store; remove them and their data after.
    `iptables`: for servers that run containers talking to each other (see scratch_engine)."""
    if shutil.which("dockerd") is None:
        raise BenchmarkError("dockerd is not installed: run `sudo scripts/testbed up`")
    top = Path(tempfile.mkdtemp(prefix="pcb-", dir="/tmp"))  # short: socket paths are limited to 107 bytes
    started: list[ScratchEngine] = []
    try:
        servers = []
        for store in stores:
            engine = scratch_engine(top / store, store, iptables)
            started.append(engine)
            try:
                engine.start()
            except BedError as error:
                raise BenchmarkError(f"{error} (or use --servers testbed)") from None
            server = Server(store, engine.host, DockerClient(host=engine.host))
            check_store(server)
            servers.append(server)
        yield servers
    finally:
        for engine in started:
            engine.close()
        if mounts_under(top):
            print(f"warning: mounts remain under {top}; left in place", flush=True)
        else:
            shutil.rmtree(top, ignore_errors=True)


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

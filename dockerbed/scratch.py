"""A throwaway engine: started for a run of tests or a benchmark chain, then removed with all it made.

Its bridge (created unless it exists), optionally its data root on a tmpfs (a disk of a known
size that tests can fill), the dockerd; `close()` removes the containers and networks that ran
on it (a network's bridge outlives its engine and holds one of the host's address ranges),
stops it, unmounts the tmpfs and deletes the bridge it created.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass, field

from dockerbed import bridges, engines, processes
from dockerbed.engines import Engine


@dataclass
class ScratchEngine:
    engine: Engine
    bridge_cidr: str  # the address of engine.bridge, e.g. 10.213.21.1/24
    disk_size: str | None = None  # a tmpfs of this size (e.g. "1536m") for the data root
    created_bridge: bool = field(default=False, init=False)
    mounted: bool = field(default=False, init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def host(self) -> str:
        return self.engine.host

    def start(self) -> None:
        self.engine.data_root.mkdir(parents=True, exist_ok=True)
        if self.disk_size and not self.mounted:
            processes.check("mount", "-t", "tmpfs", "-o", f"size={self.disk_size}", "tmpfs", str(self.engine.data_root))
            self.mounted = True
        assert self.engine.bridge, "a scratch engine needs a bridge of its own (never --bridge none)"
        self.created_bridge = bridges.ensure(self.engine.bridge, self.bridge_cidr) or self.created_bridge
        self.start_dockerd()

    def start_dockerd(self) -> None:
        self.process = engines.start(self.engine)

    def stop_dockerd(self, timeout: float = 60) -> None:
        """SIGTERM, as an init system stops it: running containers are stopped first."""
        engines.stop(self.engine, self.process, timeout)
        self.process = None

    def restart(self) -> float:
        """Stop the engine and start it again with the same command line; the seconds it was down."""
        started = time.monotonic()
        self.stop_dockerd()
        self.start_dockerd()
        return time.monotonic() - started

    def remove_containers_and_networks(self) -> None:
        docker = ("docker", "-H", self.host)
        containers = processes.run(*docker, "ps", "-aq").stdout.split()
        if containers:
            processes.run(*docker, "rm", "-f", "-v", *containers)
        processes.run(*docker, "network", "prune", "-f")

    def close(self) -> None:
        """Everything start() made: containers and networks removed, engine stopped, tmpfs unmounted, bridge deleted."""
        if engines.answers(self.engine):
            self.remove_containers_and_networks()
        self.stop_dockerd()
        if self.mounted:
            for _ in range(20):
                if processes.run("umount", str(self.engine.data_root)).returncode == 0:
                    break
                time.sleep(0.5)
            else:
                processes.run("umount", "-l", str(self.engine.data_root))
            self.mounted = False
        if self.created_bridge:
            bridges.delete(self.engine.bridge or "")
            self.created_bridge = False


def mounts_under(path: object) -> bool:
    """Something is still mounted below `path` (then its files must not be deleted)."""
    with suppress(OSError), open("/proc/mounts") as mounts:
        return any(len(line.split()) > 1 and line.split()[1].startswith(str(path)) for line in mounts)
    return False

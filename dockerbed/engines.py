"""Docker engines of the test bed: each a dockerd with its files under one root directory.

An engine is confined to its root (data, exec root, socket, pid file, daemon.json, log) and
to a bridge of its own, or it is the host's engine (`system`: /var/lib/docker and
/var/run/docker.sock, bridge docker0). Pitfalls verified on these machines:
- never `--bridge none`: a dockerd started so deletes the host's docker0;
- iptables stays on for engines that run compose projects: the embedded DNS of user networks
  works through iptables rules in each container's namespace;
- an engine in a network namespace is started through `nsenter --net` (not `ip netns exec`,
  which remounts /sys and loses the cgroup mount) with a private /run/docker (libnetwork keeps
  its sandboxes there whatever the exec root) and a hostname of its own (`unshare --uts`).
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockerbed import processes

STORES = ("overlay2", "containerd")
# The image stores' daemon.json: overlay2 (the classic store, most servers' default) or containerd's.
DAEMON_CONFIG: dict[str, dict[str, Any]] = {
    "overlay2": {"storage-driver": "overlay2", "features": {"containerd-snapshotter": False}},
    "containerd": {"features": {"containerd-snapshotter": True}},
}
SYSTEM_SOCKET = Path("/var/run/docker.sock")
SYSTEM_PID_FILE = Path("/var/run/docker.pid")


@dataclass(frozen=True)
class Engine:
    root: Path  # short: the containerd socket below exec/ must fit in 107 bytes
    store: str = "overlay2"
    bridge: str | None = None  # None: docker0 (the host's engine, or an engine in a network namespace)
    system: bool = False  # the host's engine: dockerd's default data root, socket and pid file
    iptables: bool = True
    ip_forward: bool = True
    netns: str | None = None  # a network namespace of /run/netns to run in
    hostname: str | None = None  # with netns: the engine's node name

    def __post_init__(self) -> None:
        if self.store not in STORES:
            raise ValueError(f"unknown image store {self.store!r}: use one of {', '.join(STORES)}")

    # Its files: under its root, except the host engine's socket and pid file (dockerd's defaults).
    socket = property(lambda self: SYSTEM_SOCKET if self.system else self.root / "docker.sock")
    pid_file = property(lambda self: SYSTEM_PID_FILE if self.system else self.root / "docker.pid")
    data_root = property(lambda self: self.root / "data")
    config_file = property(lambda self: self.root / "daemon.json")
    log = property(lambda self: self.root / "dockerd.log")
    host = property(lambda self: f"unix://{self.socket}")

    def daemon_config(self) -> dict[str, Any]:
        return DAEMON_CONFIG[self.store]

    def dockerd_argv(self) -> list[str]:
        """Pure: the dockerd command line."""
        argv = ["dockerd", "--config-file", str(self.config_file)]
        if not self.system:
            argv += ["--data-root", str(self.data_root), "--exec-root", str(self.root / "exec"),
                     "-H", self.host, "--pidfile", str(self.pid_file)]  # fmt: skip
        if self.bridge:
            argv += ["--bridge", self.bridge]
        if not self.iptables:
            argv += ["--iptables=false", "--ip6tables=false"]
        if not self.ip_forward:
            argv.append("--ip-forward=false")
        return argv

    def argv(self) -> list[str]:
        """Pure: what to run: dockerd, or in a network namespace the nsenter/unshare wrapper around it."""
        if self.netns is None:
            return self.dockerd_argv()
        script = f"mount --bind {shlex.quote(str(self.root / 'run-docker'))} /run/docker; exec {shlex.join(self.dockerd_argv())}"
        if self.hostname:
            script = f"hostname {shlex.quote(self.hostname)}; {script}"
        return ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--mount", "--uts", "--propagation", "private",
                "sh", "-c", script]  # fmt: skip


def answers(engine: Engine, timeout: float = 2) -> bool:
    """The engine's API answers /_ping on its socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(str(engine.socket))
            client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := client.recv(4096):
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0] and reply.endswith(b"OK")


def start(engine: Engine, timeout: float = 60) -> subprocess.Popen[bytes] | None:
    """Start the engine and wait until it answers; None when it already runs. Its bridge must exist."""
    if answers(engine):
        return None
    engine.root.mkdir(parents=True, exist_ok=True)
    if not engine.system:
        engine.data_root.mkdir(exist_ok=True)
    if engine.netns is not None:
        (engine.root / "run-docker").mkdir(exist_ok=True)
    engine.config_file.write_text(json.dumps(engine.daemon_config()) + "\n")
    processes.clear_stale(engine.pid_file, engine.config_file)
    process = processes.spawn(engine.argv(), engine.log)
    processes.wait_until_up(f"dockerd at {engine.socket}", lambda: answers(engine), process, engine.log, timeout)
    return process


def stop(engine: Engine, process: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    """SIGTERM by its pid file, as an init system stops it (containers stop first); SIGKILL after `timeout`.
    `process`: the one start() returned, reaped here."""
    processes.stop(engine.pid_file, engine.config_file, timeout=timeout)
    processes.reap(process)

"""The per-host deploy lock: a Docker network named <compose project>-deploy-lock.

Creating a network whose name exists fails, so exactly one deploy holds it; its
labels say who holds it and since when. It lives on the host, so every operator's
machine sees the same lock.

A deploy that finds the lock held fails at once, or with a lock wait waits for it
(showing who holds it). A holder on this machine whose process is gone is a stale
lock: it is reported with the `invoke unlock` command at once, never waited for.
"""
from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.engine import last_line
from delivery.errors import DeliveryError

POLL_SECONDS = 1.0


def lock_name(project: str) -> str:
    return f"{project}-deploy-lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, from its labels."""

    owner: str  # user@machine pid N
    since: str
    machine: str | None = None
    pid: int | None = None
    pid_start: str | None = None  # the process's start time (field 22 of /proc/PID/stat): pids are reused
    pid_ns: str | None = None  # its pid namespace: containers sharing a host name do not see each other's pids

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> "Holder":
        pid = labels.get("pid", "")
        return cls(
            owner=labels.get("owner", "?"),
            since=labels.get("since", "?"),
            machine=labels.get("machine") or None,
            pid=int(pid) if pid.isdigit() else None,
            pid_start=labels.get("pid_start") or None,
            pid_ns=labels.get("pid_ns") or None,
        )

    def describe(self) -> str:
        return f"held by {self.owner} since {self.since}"

    def is_gone(self, machine: str, pid_ns: str | None, process_start: Callable[[int], str | None]) -> bool:
        """True when the holder ran on `machine` in `pid_ns` (this process's) and its process no longer exists.

        A holder on another machine (or in another pid namespace) cannot be checked from here: never called gone.
        """
        if self.machine != machine or self.pid is None or (self.pid_ns is not None and self.pid_ns != pid_ns):
            return False
        started = process_start(self.pid)
        return started is None or (self.pid_start is not None and started != self.pid_start)


def process_start(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None  # field 22 overall; fields[0] is field 3 (state)


def pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def my_labels() -> dict[str, str]:
    machine, pid = socket.gethostname(), os.getpid()
    return {
        "owner": f"{getpass.getuser()}@{machine} pid {pid}",
        "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine,
        "pid": str(pid),
        "pid_start": process_start(pid) or "",
        "pid_ns": pid_namespace() or "",
    }


def stale_message(host_label: str, host_arg: str, holder: Holder) -> str:
    return (
        f"the deploy lock on {host_label} is stale: it is {holder.describe()}, and that process is gone; "
        f"remove it with `invoke unlock --host {host_arg}`, then deploy again"
    )


@contextlib.contextmanager
def deploy_lock(
    docker: DockerClient,
    project: str,
    host_label: str,
    host_arg: str,
    wait: float = 0.0,
    say: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the host's deploy lock for the project, waiting up to `wait` seconds for another deploy's.

    Refuses at once with who holds it (wait 0), or when the holder is gone (stale lock).
    """
    name = lock_name(project)
    deadline = time.monotonic() + wait
    shown: Holder | None = None
    while True:
        try:
            docker.network.create(name, labels=my_labels())
            break
        except DockerException as exc:
            if "already exists" not in (exc.stderr or ""):
                raise DeliveryError(f"taking the deploy lock on {host_label} failed: {last_line(exc)}") from exc
        holder = read_holder(docker, project)
        if holder is None:
            time.sleep(0.1)  # released between our create and our inspect: try again
            continue
        if holder.is_gone(socket.gethostname(), pid_namespace(), process_start):
            raise DeliveryError(stale_message(host_label, host_arg, holder))
        if time.monotonic() >= deadline:
            waited = f" after waiting {wait:.0f}s" if wait > 0 else ""
            raise DeliveryError(
                f"another deploy to {host_label} is running ({holder.describe()}){waited}: wait for it to finish "
                f"(or pass --lock-wait SECONDS), or if it died, `invoke unlock --host {host_arg}`"
            )
        if say is not None and holder != shown:
            say(f"{host_label}: waiting up to {wait:.0f}s for the deploy lock, {holder.describe()}")
            shown = holder
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    if shown is not None and say is not None:
        say(f"{host_label}: got the deploy lock")
    try:
        yield
    finally:
        with contextlib.suppress(DockerException):
            docker.network.remove(name)


def read_holder(docker: DockerClient, project: str) -> Holder | None:
    """Who holds the project's lock; None when nobody does."""
    try:
        labels = docker.network.inspect(lock_name(project)).labels or {}
    except DockerException:
        return None
    return Holder.from_labels(labels)


def lock_holder(docker: DockerClient, project: str) -> str | None:
    """Who holds the project's lock and since when; None when nobody does."""
    holder = read_holder(docker, project)
    return holder.describe() if holder else None


def release_lock(docker: DockerClient, project: str) -> bool:
    """Remove a stale lock; True if there was one."""
    try:
        docker.network.remove(lock_name(project))
        return True
    except DockerException:
        return False

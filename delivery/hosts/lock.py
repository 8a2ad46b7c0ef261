"""The per-host deploy lock: a Docker volume named <compose project>-deploy-lock whose labels say who holds it.

Why a named volume (and no longer a network):
- Atomic on every engine: `docker volume create` of a name that exists succeeds and returns the
  existing volume with its labels unchanged (the engine creates volumes under a per-name lock). So a
  deploy creates the volume with labels carrying its own random owner token, reads the labels back,
  and holds the lock exactly when the token is its own: of any number of racing deploys, one wins
  (checked on Engine 26.1 with 8 concurrent creates). A network is not a lock: on Engine 24 two
  `docker network create` of one name can both succeed.
- It survives the prunes: `docker network prune`, `docker image prune -a` and `docker system prune`
  (with or without --volumes: since Engine 23 those prune anonymous volumes only) leave named volumes
  alone. Only `docker volume rm` or `docker volume prune --all` remove it (then the holder's release
  finds nothing to remove, and another deploy may take the lock: do not run those during a deploy).
- A holder identity unique per machine: /etc/machine-id (else the boot id) and the boot id, the pid
  namespace, the pid and its start time. A holder is judged gone (a stale lock) only when it ran on
  this machine, in this boot and pid namespace, and its process is gone; two machines that share a
  host name (`runner`, `ubuntu`) or the initial pid namespace's id are never mistaken for each other.
- Released only by its holder: the holder removes the volume only while its token is still on it,
  so a holder whose lock was forced away never removes the next holder's. `invoke unlock` removes a
  stale lock; a live holder, or one that cannot be checked from here (another machine), only with --force.

A deploy that finds the lock held fails at once, or with a lock wait waits for it (showing who
holds it); a stale lock is reported with the `invoke unlock` command at once, never waited for.
Only "no such volume" means no lock: any other engine error reading it is one line of its own (read as
no lock, it would come back as a lock that vanished, or as a lock nobody holds).
Swarm deploys take the same lock on the manager engine they deploy through.
"""
from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException, NoSuchVolume

from delivery.docker.engine import last_line, volume_labels
from delivery.errors import DeliveryError
from delivery.reporting import Reporter

POLL_SECONDS = 1.0
VANISHED_RETRIES = 10  # the lock went between our create and our read: another holder's release, retried at once
LOCK_LABEL = "production-control.deploy-lock"  # its value: the compose project


def lock_name(project: str) -> str:
    return f"{project}-deploy-lock"


@dataclass(frozen=True)
class Machine:
    """Where a process runs, as far as a lock can tell: the machine, its current boot, the pid namespace."""

    machine_id: str | None
    boot_id: str | None
    pid_ns: str | None


def _read_id(path: str) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def this_machine() -> Machine:
    boot_id = _read_id("/proc/sys/kernel/random/boot_id")
    return Machine(_read_id("/etc/machine-id") or boot_id, boot_id, pid_namespace())


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, from its labels."""

    owner: str  # user@hostname pid N
    since: str
    machine: str | None = None  # the host name: for people only
    pid: int | None = None
    pid_start: str | None = None  # the process's start time (field 22 of /proc/PID/stat): pids are reused
    pid_ns: str | None = None  # its pid namespace: containers on one machine do not see each other's pids
    machine_id: str | None = None
    boot_id: str | None = None
    token: str | None = None  # the holder's random owner token

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Holder:
        pid = labels.get("pid", "")
        return cls(
            owner=labels.get("owner", "?"),
            since=labels.get("since", "?"),
            machine=labels.get("machine") or None,
            pid=int(pid) if pid.isdigit() else None,
            pid_start=labels.get("pid_start") or None,
            pid_ns=labels.get("pid_ns") or None,
            machine_id=labels.get("machine_id") or None,
            boot_id=labels.get("boot_id") or None,
            token=labels.get("token") or None,
        )

    def describe(self) -> str:
        return f"held by {self.owner} since {self.since}"

    def checkable_from(self, here: Machine) -> bool:
        """True when the holder's process can be looked up from here: same machine id, boot and pid namespace.

        A lock without a machine id (an older toolkit's) or from another machine, boot or container cannot.
        """
        return (
            self.pid is not None and self.machine_id is not None and self.machine_id == here.machine_id
            and self.boot_id == here.boot_id and self.pid_ns == here.pid_ns
        )  # fmt: skip

    def is_gone(self, here: Machine, process_start: Callable[[int], str | None]) -> bool:
        """True when the holder ran here (checkable_from) and its process no longer exists (or its pid was reused)."""
        if not self.checkable_from(here):
            return False
        assert self.pid is not None
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


def my_labels(project: str = "", machine: Machine | None = None, token: str | None = None) -> dict[str, str]:
    """The labels of a lock this process takes: who it is (for people), where it runs, a fresh owner token."""
    here = machine or this_machine()
    hostname, pid = socket.gethostname(), os.getpid()
    return {
        LOCK_LABEL: project,
        "owner": f"{getpass.getuser()}@{hostname} pid {pid}",
        "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": hostname,
        "machine_id": here.machine_id or "",
        "boot_id": here.boot_id or "",
        "pid": str(pid),
        "pid_start": process_start(pid) or "",
        "pid_ns": here.pid_ns or "",
        "token": token or secrets.token_hex(16),
    }


class LockStore(Protocol):
    """Where one lock lives: `create` is idempotent (an existing lock keeps its labels)."""

    def create(self, labels: Mapping[str, str]) -> None: ...

    def labels(self) -> Mapping[str, str] | None:  # None: no lock; DeliveryError: the store cannot be read
        ...

    def remove(self) -> None: ...


class VolumeLock:
    """The lock as a named volume on an engine (see the module docstring for why)."""

    def __init__(self, docker: DockerClient, project: str, host_label: str = ""):
        self.docker, self.name, self.host_label = docker, lock_name(project), host_label

    def create(self, labels: Mapping[str, str]) -> None:
        try:
            self.docker.volume.create(self.name, driver="local", labels=dict(labels))
        except DockerException as exc:
            raise DeliveryError(f"taking the deploy lock on {self.host_label} failed: {last_line(exc)}") from exc

    def labels(self) -> Mapping[str, str] | None:
        """The lock's labels; None only when its volume does not exist. Any other engine error is one line:
        read as "no lock", it would later be reported as a lock that vanished, or a lock nobody holds."""
        try:
            found = volume_labels(self.docker, self.name)
        except NoSuchVolume:
            return None
        except DockerException as exc:
            raise DeliveryError(unreadable_message(self.host_label, last_line(exc))) from exc
        return found[0] if found else None

    def remove(self) -> None:
        with contextlib.suppress(DockerException):
            self.docker.volume.remove(self.name)


def unreadable_message(host_label: str, reason: str) -> str:
    return f"the engine{f' at {host_label}' if host_label else ''} could not be asked about the deploy lock: {reason}"


def stale_message(host_label: str, host_arg: str, holder: Holder) -> str:
    return (
        f"the deploy lock on {host_label} is stale: it is {holder.describe()}, and that process is gone; "
        f"remove it with `invoke unlock --host {host_arg}`, then deploy again"
    )


def acquire(store: LockStore, labels: Mapping[str, str], host_label: str, host_arg: str, wait: float = 0.0,
            reporter: Reporter | None = None, here: Machine | None = None,
            started: Callable[[int], str | None] = process_start,
            clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Take the lock in `store` with `labels` (their token is ours), waiting up to `wait` seconds for another holder.

    Create, then read back: ours when the token on the lock is ours. With `wait` 0 a held lock fails at
    the first look; a stale one fails at once whatever the wait.
    """
    here = here or this_machine()
    deadline = clock() + wait
    shown: Holder | None = None
    vanished = 0
    while True:
        store.create(labels)
        found = store.labels()
        if found is None:  # released between our create and our read: try again at once, a few times
            vanished += 1
            if vanished > VANISHED_RETRIES:
                raise DeliveryError(f"the deploy lock on {host_label} vanished {vanished} times while it was taken: "
                                    "is something removing volumes (`docker volume prune --all`)? try again")
            continue
        holder = Holder.from_labels(found)
        if holder.token is not None and holder.token == labels.get("token"):
            break
        if holder.is_gone(here, started):
            raise DeliveryError(stale_message(host_label, host_arg, holder))
        if clock() >= deadline:
            waited = f" after waiting {wait:.0f}s" if wait > 0 else ""
            raise DeliveryError(
                f"another deploy to {host_label} is running ({holder.describe()}){waited}: wait for it to finish "
                f"(or pass --lock-wait SECONDS), or if it died, `invoke unlock --host {host_arg}`"
            )
        if reporter is not None and holder != shown:
            reporter.step(f"{host_label}: waiting up to {wait:.0f}s for the deploy lock, {holder.describe()}")
            shown = holder
        sleep(min(POLL_SECONDS, max(0.0, deadline - clock())))
    if shown is not None and reporter is not None:
        reporter.step(f"{host_label}: got the deploy lock")


def release(store: LockStore, token: str) -> bool:
    """Remove the lock if it is still ours (its token is `token`); True if it was removed."""
    found = store.labels()
    if found is None or found.get("token") != token:
        return False
    store.remove()
    return True


@contextlib.contextmanager
def deploy_lock(
    docker: DockerClient,
    project: str,
    host_label: str,
    host_arg: str,
    wait: float = 0.0,
    reporter: Reporter | None = None,
    store: LockStore | None = None,
) -> Iterator[None]:
    """Hold the host's deploy lock for the project, waiting up to `wait` seconds for another deploy's.

    Refuses at once with who holds it (wait 0), or when the holder is gone (stale lock). On the way
    out, removes the lock only if it is still this holder's.
    """
    store = store or VolumeLock(docker, project, host_label)
    here = this_machine()
    labels = my_labels(project, here)
    acquire(store, labels, host_label, host_arg, wait, reporter, here)
    try:
        yield
    finally:
        try:
            released = release(store, labels["token"])
        except DeliveryError as exc:  # said, not raised: it would hide what the task did
            if reporter is None:
                raise
            reporter.step(f"{host_label}: warning: {exc}; the lock may still be held: `invoke status --host {host_arg}` "
                f"shows it, `invoke unlock --host {host_arg}` removes it")
        else:
            if not released and reporter is not None:
                reporter.step(f"{host_label}: warning: the deploy lock was no longer this deploy's (removed by hand, or "
                    "`invoke unlock --force`): left as it is")


def read_holder(docker: DockerClient, project: str, store: LockStore | None = None, host_label: str = "") -> Holder | None:
    """Who holds the project's lock; None when nobody does."""
    labels = (store or VolumeLock(docker, project, host_label)).labels()
    return Holder.from_labels(labels) if labels is not None else None


def lock_holder(docker: DockerClient, project: str, host_label: str = "") -> str | None:
    """Who holds the project's lock and since when; None when nobody does."""
    holder = read_holder(docker, project, host_label=host_label)
    return holder.describe() if holder else None


def unlock_refusal(holder: Holder, here: Machine, started: Callable[[int], str | None], host_label: str,
                   host_arg: str) -> str | None:
    """Why `invoke unlock` (without --force) keeps `holder`'s lock, in one line; None when it is stale."""
    force = f"`invoke unlock --host {host_arg} --force`"
    if holder.is_gone(here, started):
        return None
    if holder.checkable_from(here):
        return (f"the deploy lock on {host_label} is {holder.describe()}, and that process is still running on this "
                f"machine: let it finish, or remove the lock anyway with {force}")
    return (f"the deploy lock on {host_label} is {holder.describe()}, taken on {holder.machine or 'an unknown machine'} "
            "(another machine, boot or container), which cannot be checked from here: "
            f"if that deploy is gone, remove the lock with {force}")


def unlock(docker: DockerClient, project: str, host_label: str, host_arg: str, force: bool = False,
           store: LockStore | None = None, here: Machine | None = None,
           started: Callable[[int], str | None] = process_start) -> str:
    """`invoke unlock` on one host: remove a stale lock (any lock with `force`); what was done, in one line.

    Raises DeliveryError (naming --force) for a live holder or one that cannot be checked from here.
    """
    store = store or VolumeLock(docker, project, host_label)
    labels = store.labels()
    if labels is None:
        return f"{host_label}: no deploy lock was held"
    holder = Holder.from_labels(labels)
    refusal = unlock_refusal(holder, here or this_machine(), started, host_label, host_arg)
    if refusal is not None and not force:
        raise DeliveryError(refusal)
    if holder.token is not None and not release(store, holder.token):
        return f"{host_label}: the deploy lock changed hands meanwhile: left as it is (run unlock again to see who holds it)"
    if holder.token is None:
        store.remove()
    return f"{host_label}: removed {'the' if refusal else 'a stale'} deploy lock ({holder.describe()})" + (" (--force)" if refusal else "")


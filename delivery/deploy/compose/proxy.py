"""The reverse proxy in front of the web slots: HAProxy, driven through its runtime API.

docker-compose.yml runs HAProxy (service `proxy`) with one backend, `web`, and a
server per web slot (`blue` -> service web-blue, `green` -> service web-green).
Its runtime API listens only inside the proxy container's own network namespace
(127.0.0.1:9999, and a UNIX socket in its /tmp for reloads): no web or cron
container, and nothing on the host's bridge, can reach it. The deploy reaches it
with `docker exec` into the proxy, through bash's /dev/tcp (bash and cat are in
every Debian-based HAProxy image): no app container is on the path, so a dead
release cannot blind the deploy, and a compromised one cannot steer the proxy.

After every state change the servers' state is saved to the proxy's
server-state-file, which HAProxy loads when it restarts or reloads: a slot that
was never validated does not get traffic after a restart.

The commands and the parsing of HAProxy's answers are pure functions (tested
without Docker); `Proxy` is the one place that sends them.
"""
from __future__ import annotations

import csv
import io
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.docker.engine import last_line
from delivery.errors import DeliveryError

BACKEND = "web"
RUNTIME_API = ("127.0.0.1", 9999)  # inside the proxy's network namespace only
CONFIG_PATH = "/usr/local/etc/haproxy/haproxy.cfg"
CANDIDATE_PATH = "/tmp/haproxy.cfg.next"  # a new configuration, checked before it goes in place
STATE_FILE = "/tmp/haproxy-servers.state"  # docker-compose.yml: global server-state-file
LIVE_WEIGHT = 256
# The old release stays behind the new one during the watch window with this weight:
# it gets ~0.4 % of requests, and every GET the new one fails is retried on it.
FALLBACK_WEIGHT = 1

# Run with `bash -c` in the proxy container: one runtime API command (several joined by ';')
# as $3, the answer on stdout (HAProxy closes the connection after answering), or into the
# file $4 (written whole, then renamed) when given.
_CLIENT = r"""
exec 3<>"/dev/tcp/$1/$2" || exit 1
printf '%s\n' "$3" >&3
if [ -n "$4" ]; then cat <&3 >"$4.next" && mv -f "$4.next" "$4"; else cat <&3; fi
"""


def client_argv(command: str, into: str = "") -> list[str]:
    """Pure: the `docker exec` argv (in the proxy) that sends one runtime API command."""
    host, port = RUNTIME_API
    return ["bash", "-c", _CLIENT, "runtime-api", host, str(port), command, into]


@dataclass(frozen=True)
class ServerStats:
    """One web slot as HAProxy counts it (`show stat`): counters since the proxy started."""

    name: str
    status: str  # UP, DOWN, DRAIN, MAINT, "MAINT (resolution)" (no container), ...
    check_status: str  # L7OK when the proxy's own /healthz check passes
    weight: int
    in_flight: int  # scur: requests being served now
    requests: int  # stot: requests sent to it
    responses_5xx: int  # hrsp_5xx: 5xx answers passed on to clients
    retries: int  # wretr: requests it failed that were retried elsewhere

    @property
    def errors(self) -> int:
        """Requests it answered with a 5xx or failed (retried on another slot)."""
        return self.responses_5xx + self.retries

    @property
    def check_passes(self) -> bool:
        return self.check_status.startswith("L7OK")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def parse_stats(text: str) -> dict[str, ServerStats]:
    """The servers of backend `web` in a `show stat` answer (CSV with a '# ' header)."""
    text = text.lstrip()
    if not text.startswith("# pxname"):
        raise DeliveryError(f"the proxy's runtime API answered {text[:80]!r} instead of statistics")
    reader = csv.DictReader(io.StringIO(text[2:]))
    servers = {}
    for row in reader:
        if row.get("pxname") != BACKEND or row.get("svname") in ("BACKEND", "FRONTEND"):
            continue
        name = row["svname"]
        servers[name] = ServerStats(
            name=name,
            status=row.get("status", ""),
            check_status=row.get("check_status", ""),
            weight=_int(row.get("weight")),
            in_flight=_int(row.get("scur")),
            requests=_int(row.get("stot")),
            responses_5xx=_int(row.get("hrsp_5xx")),
            retries=_int(row.get("wretr")),
        )
    return servers


@dataclass(frozen=True)
class Window:
    """What the proxy counted for one slot between two readings."""

    seconds: float
    requests: int
    errors: int
    failed_reads: int = 0  # statistics reads that failed during the window
    problem: str | None = None  # why the window cannot pass whatever it counted (stats unreadable, container exited)
    note: str | None = None  # how a window passed that saw no traffic

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {"seconds": round(self.seconds, 2), "requests": self.requests, "errors": self.errors,
                "error_rate": round(self.error_rate, 4), "failed_reads": self.failed_reads,
                "problem": self.problem, "note": self.note}


def window(before: ServerStats, after: ServerStats, seconds: float) -> Window:
    """Counts between two readings; a proxy restarted in between starts again from zero."""
    restarted = after.requests < before.requests
    base_requests = 0 if restarted else before.requests
    base_errors = 0 if restarted else before.errors
    requests = after.requests - base_requests
    errors = min(after.errors - base_errors, requests) if requests else after.errors - base_errors
    return Window(seconds, requests, max(errors, 0))


def too_many_errors(observed: Window, max_error_rate: float) -> bool:
    """The watch window's verdict: more errors than max_error_rate allows (at least one error)."""
    return observed.errors > 0 and observed.error_rate > max_error_rate


def window_failure(observed: Window, max_error_rate: float, min_requests: int = 0) -> str | None:
    """Pure: why the watch window fails (it fails closed), or None when it passes.

    In order: a problem found while watching (stats unreadable, the container exited or restarted),
    too many errors, fewer requests than `min_requests` (deploy.watch_min_requests; 0: none needed).
    """
    if observed.problem:
        return observed.problem
    if too_many_errors(observed, max_error_rate):
        return (f"{observed.errors} of {observed.requests} requests failed "
                f"(deploy.max_error_rate {max_error_rate:g})")
    if observed.requests < min_requests:
        return f"only {observed.requests} requests reached it (deploy.watch_min_requests {min_requests})"
    return None


# -- commands (pure) -----------------------------------------------------------------------------
def hold_command(slot: str) -> str:
    """Keep a slot out of the rotation while its health is still checked (before a release starts in it)."""
    return f"set server {BACKEND}/{slot} state drain"


def switch_command(new: str, old: str | None) -> str:
    """Send requests to `new`; `old` (if any) stays behind it as the fallback of failed GETs."""
    parts = [f"set weight {BACKEND}/{new} {LIVE_WEIGHT}", f"set server {BACKEND}/{new} state ready"]
    if old:
        parts.append(f"set weight {BACKEND}/{old} {FALLBACK_WEIGHT}")
    return "; ".join(parts)


def drain_command(slot: str) -> str:
    """No new requests to `slot`; the ones in flight finish."""
    return f"set server {BACKEND}/{slot} state drain"


def check_answer(command: str, answer: str) -> None:
    """Setting commands answer nothing (or blank lines) when they work."""
    problems = [line for line in answer.splitlines() if line.strip()]
    if problems:
        raise DeliveryError(f"the proxy refused `{command}`: {problems[0]}")


# -- the one place that talks to it ---------------------------------------------------------------
class Proxy:
    """HAProxy's runtime API, reached through `docker exec` in the proxy container itself.

    It remembers the state commands it applied (hold, switch, drain) and saves the servers'
    state after each: when the proxy container restarts (its restart policy brings it back),
    HAProxy loads that state, the commands are applied again all the same, and the restart is counted.
    """

    def __init__(self, docker: DockerClient, container: str | None = None,
                 patience: float = 30.0, sleep: Callable[[float], None] = time.sleep):
        self.docker = docker
        self.patience = patience  # how long a command waits for a proxy that is restarting
        self._sleep = sleep
        self.applied: list[str] = []
        self.restarts = 0
        self.container: str | None = None
        self._started_at: object = None
        if container:
            self.attach(container)

    def attach(self, container: str) -> None:
        """Watch this proxy container for restarts from now on."""
        self.container = container
        self._started_at = self._container_started_at()

    @property
    def _id(self) -> str:
        if self.container is None:
            raise DeliveryError("no proxy container to reach the proxy's runtime API in")
        return self.container

    def _container_started_at(self) -> object:
        try:
            return self.docker.container.inspect(self._id).state.started_at
        except DockerException:
            return None

    def _exec(self, command: str, into: str = "") -> str:
        container = self._id
        deadline = time.monotonic() + self.patience
        while True:
            try:
                return str(self.docker.container.execute(container, client_argv(command, into)) or "")
            except DockerException as exc:  # the proxy restarting (refused, no DNS name yet), or the engine
                if time.monotonic() >= deadline:
                    raise DeliveryError(f"the proxy's runtime API did not answer `{command}`: {last_line(exc)}") from exc
                self._sleep(0.5)

    def _reapply_after_restart(self) -> None:
        if self.container is None:
            return
        started_at = self._container_started_at()
        if started_at is None or started_at == self._started_at:
            return
        self._started_at = started_at
        self.restarts += 1
        for command in self.applied:
            check_answer(command, self._exec(command))
        self.save_state()

    def send(self, command: str) -> str:
        self._reapply_after_restart()
        return self._exec(command)

    def set(self, command: str) -> None:
        check_answer(command, self.send(command))
        self.applied.append(command)
        self.save_state()

    def save_state(self) -> None:
        """Write the servers' state (weights, drain) to the file HAProxy loads when it starts or reloads."""
        self._exec(f"show servers state {BACKEND}", into=STATE_FILE)

    def worker_pid(self) -> int:
        """The pid of the worker answering (it changes when HAProxy reloads)."""
        for line in self.send("show info").splitlines():
            if line.startswith("Pid:"):
                return _int(line.split(":", 1)[1].strip())
        raise DeliveryError("the proxy's runtime API answered `show info` without a Pid line")

    def stats(self) -> dict[str, ServerStats]:
        return parse_stats(self.send(f"show stat {BACKEND} 4 -1"))

    def server(self, slot: str) -> ServerStats:
        servers = self.stats()
        if slot not in servers:
            raise DeliveryError(f"the proxy has no server {BACKEND}/{slot}: is its configuration the one in docker-compose.yml?")
        return servers[slot]

    def wait(self, timeout: float, ready: Callable[[], bool]) -> bool:
        """Poll `ready` (errors count as not ready: the proxy may be restarting) until true or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return True
            except DeliveryError:
                pass
            if time.monotonic() >= deadline:
                return False
            self._sleep(0.25)

    def wait_passing(self, slot: str, timeout: float) -> bool:
        """Until the proxy's own health check of `slot` passes."""
        return self.wait(timeout, lambda: self.server(slot).check_passes)

    def drain(self, slot: str, timeout: float) -> tuple[float, int]:
        """Stop sending new requests to `slot` and wait for the ones in flight: (seconds, left in flight)."""
        started = time.monotonic()
        self.set(drain_command(slot))
        left = 0

        def idle() -> bool:
            nonlocal left
            left = self.server(slot).in_flight
            return left == 0

        self.wait(timeout, idle)
        return time.monotonic() - started, left

    def running_config(self) -> str:
        """The configuration file the proxy container holds now."""
        try:
            return str(self.docker.container.execute(self._id, ["cat", CONFIG_PATH]) or "")
        except DockerException as exc:
            raise DeliveryError(f"reading the proxy's configuration failed: {last_line(exc)}") from exc

    def reload(self, config: str, timeout: float = 15.0) -> float:
        """Put `config` in place and reload HAProxy without dropping a connection; the seconds it took.

        The new file is checked by the proxy's own haproxy first (an invalid one changes nothing).
        Then the servers' state is saved, and SIGUSR2 makes the master start a new worker, which
        takes over the listening sockets (expose-fd listeners: none is closed) and loads that state,
        while the old worker finishes the requests it holds.
        """
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "haproxy.cfg"
            local.write_text(config)
            local.chmod(0o644)
            try:
                self.docker.container.copy(local, (self._id, CANDIDATE_PATH))
                self.docker.container.execute(self._id, ["haproxy", "-c", "-q", "-f", CANDIDATE_PATH])
            except DockerException as exc:
                raise DeliveryError(f"the new proxy configuration was not applied: HAProxy rejects it ({last_line(exc)})") from exc
            before = self.worker_pid()
            self.save_state()
            try:
                self.docker.container.copy(local, (self._id, CONFIG_PATH))
                self.docker.container.kill(self._id, signal="SIGUSR2")
            except DockerException as exc:
                raise DeliveryError(f"reloading the proxy failed: {last_line(exc)}") from exc
        if not self.wait(timeout, lambda: self.worker_pid() != before):
            raise DeliveryError(f"the proxy did not reload within {timeout:g}s: its log (`docker logs` of the proxy) says why")
        return time.monotonic() - started


@dataclass(frozen=True)
class ProxySpec:
    """What makes a proxy container what it is: its image reference, command, published address and configuration."""

    image: str
    command: tuple[str, ...]
    bind: str  # host address:port of the site
    config: str

    def changes(self, running: ProxySpec) -> list[str]:
        """Pure: what differs in `running` from this (wanted) spec: image, port, config."""
        found = []
        if running.image != self.image:
            found.append(f"image {running.image} -> {self.image}")
        if running.command != self.command:
            found.append(f"command {' '.join(running.command)} -> {' '.join(self.command)}")
        if running.bind != self.bind:
            found.append(f"address {running.bind} -> {self.bind}")
        if running.config.strip() != self.config.strip():
            found.append("configuration")
        return found


def needs_replacing(changes: list[str]) -> bool:
    """Pure: an image, command or address change needs a new container; a configuration change alone is a reload."""
    return any(not change.startswith("configuration") for change in changes)

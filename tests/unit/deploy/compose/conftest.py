"""The fakes of a compose handover that test_steps.py and test_state.py share: a docker port and a proxy that log
what is done to them, a clock, and a site and a handover built over them (imported by name: pytest runs with
--import-mode=importlib, so this module is tests.unit.deploy.compose.conftest)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from delivery.config.settings import load_config
from delivery.deploy.compose.health import ContainerState
from delivery.deploy.compose.proxy import ServerStats
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.compose.state import Handover
from delivery.errors import DeliveryError
from delivery.hosts.site import Site
from delivery.reporting import Recorded

OLD, NEW = "1.0.0-abcdef123456", "2.0.0-abcdef123456"


RELEASE = "sha256:" + "a" * 64


OTHER = "sha256:" + "b" * 64


IMAGE_ID = "sha256:" + "c" * 64


def _container(tag: str, started_at: int = 1) -> Any:
    state = SimpleNamespace(status="running", health=SimpleNamespace(status="healthy"), started_at=started_at)
    return SimpleNamespace(id=f"{tag}-id", image=IMAGE_ID, config=SimpleNamespace(image=f"localhost:5000/production-control:{tag}"),
                           state=state)


@dataclass
class FakeProxy:
    """The proxy: it logs what is sent to it; each read of a slot's stats counts `per_read` more requests."""

    events: list[str]
    container: str | None = "proxy-id"
    restarts: int = 0
    failing: set[str] = field(default_factory=set)  # slots whose check does not pass
    per_read: int = 10
    errors_per_read: int = 0
    refuse: bool = False  # setting commands fail
    counts: dict[str, int] = field(default_factory=dict)
    waited: list[float] = field(default_factory=list)  # the timeouts of `wait`

    def set(self, command: str) -> None:
        if self.refuse:
            raise DeliveryError("the proxy refused it")
        self.events.append(f"proxy {command}")

    def server(self, slot: str) -> ServerStats:
        self.counts[slot] = self.counts.get(slot, 0) + self.per_read
        errors = self.counts[slot] // self.per_read * self.errors_per_read if self.per_read else 0
        check = "L4CON" if slot in self.failing else "L7OK"
        return ServerStats(slot, "UP", check, 256, 0, self.counts[slot], errors, 0)

    def stats(self) -> dict[str, ServerStats]:
        return {slot: self.server(slot) for slot in ("blue", "green")}

    def wait(self, timeout: float, ready: Any) -> bool:
        self.waited.append(timeout)
        try:
            return bool(ready())
        except DeliveryError:
            return False

    def wait_passing(self, slot: str, timeout: float) -> bool:
        return slot not in self.failing

    def drain(self, slot: str, timeout: float) -> tuple[float, int]:
        self.events.append(f"proxy drain {slot}")
        return 1.25, 0


@dataclass
class FakePort:
    """The engine and compose: logs each operation; `fail` maps an operation (e.g. "up web-green") to what it raises."""

    proxy: FakeProxy
    events: list[str]
    unhealthy: dict[str, str] = field(default_factory=dict)  # service -> why its container does not get healthy
    runs: tuple[list[str], str] = ([RELEASE], "linux/amd64")  # repo digests and platform of every image
    fail: dict[str, BaseException] = field(default_factory=dict)
    states: list[ContainerState] = field(default_factory=lambda: [ContainerState("running", 0)])
    old_running: bool = True

    def _do(self, event: str) -> None:
        self.events.append(event)
        if event in self.fail:
            raise self.fail[event]

    def up(self, service: str, tags_: dict[str, str | None]) -> Any:
        key = "cron" if service == "cron" else service.removeprefix("web-")
        self._do(f"up {service} {tags_[key]}")
        return SimpleNamespace(id=f"{service}-id", image=IMAGE_ID)

    def remove(self, service: str, tags_: dict[str, str | None]) -> None:
        self._do(f"remove {service}")

    def wait_healthy(self, container_id: str, timeout: float, reporter: Any) -> tuple[bool, str]:
        self._do(f"wait healthy {container_id}")
        why = self.unhealthy.get(container_id.removesuffix("-id"))
        return (False, why) if why else (True, "healthy")

    def running_image(self, image_id: str) -> tuple[list[str], str]:
        return self.runs

    def container_state(self, container_id: str) -> ContainerState:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def log_tail(self, container_id: str) -> list[str]:
        return ["Traceback (most recent call last):", "ImportError: no module named x"]

    def is_running(self, container_id: str) -> bool:
        return self.old_running

    def start(self, container_id: str) -> None:
        self._do(f"start {container_id}")

    def stop_legacy(self, container_id: str) -> None:
        self._do(f"stop {container_id}")

    def remove_legacy(self, container_id: str) -> None:
        self._do(f"remove {container_id}")

    def wait_for_engine(self) -> None:
        self.events.append("wait for engine")

    def ensure_proxy(self, site: Site, tags_: dict[str, str | None], reporter: Any) -> None:
        self._do("ensure proxy")

    def record(self, kind: str, tag: str, image: str) -> None:
        self._do(f"record {kind} {tag}")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.5  # every look at the clock takes half a second
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _site(live: str | None = "blue", legacy: bool = False, leftover: bool = False) -> Site:
    web = {live: _container(OLD)} if live else {}
    if leftover:
        web["green"] = _container("0.9.0-abcdef123456")
    return Site(web=web, cron=_container(OLD) if live or legacy else None, proxy=None,
                legacy=_container(OLD) if legacy else None, live=live)


def _handover(site: Site | None = None, monitor: float = 3.0, digests: frozenset[str] = frozenset({RELEASE}),
              **port: Any) -> tuple[Handover, FakePort, Recorded]:
    events: list[str] = []
    proxy = FakeProxy(events, **port.pop("proxy", {}))
    fake = FakePort(proxy, events, **port)
    said = Recorded()
    clock = Clock()
    config = load_config({"monitor": monitor, "health_timeout": 30, "drain_timeout": 5})
    report = DeployReport(host="h1", image="i", version=NEW, digest=RELEASE)
    h = Handover(fake, said, "h1", config, site or _site(), NEW, report, digests=digests, platform="linux/amd64",
                 pin=f"{NEW}@{RELEASE}", clock=clock, sleep=clock.sleep)
    return h, fake, said


PIN = f"{NEW}@{RELEASE}"

"""The explicit state of one handover on a compose host: which slot is new and which is live, what the env
file names for each service, the container started, whether the proxy switched, so the steps
(delivery/deploy/compose/steps.py) and a restore know what to undo. `plan_handover` is pure.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from delivery.config.settings import DeployConfig
from delivery.deploy.compose.ports import DockerPort, ProxyPort, Started
from delivery.deploy.compose.proxy_upkeep import Tags
from delivery.deploy.compose.report import DeployReport
from delivery.hosts.services import other
from delivery.hosts.site import Site, running_ref
from delivery.reporting import Reporter


@dataclass(frozen=True)
class Slots:
    """Pure plan of a handover: the live slot (None: nothing, or the single-container layout, serves), the
    slot the new release starts in, and what the env file names for each service."""

    old: str | None
    new: str
    tags: Tags
    previous_cron: str | None  # the ref cron runs now (put back if the new cron fails)


def plan_handover(site: Site, tag: str, pin: str | None) -> Slots:
    """Pure: start `tag` (by `pin`, `tag@sha256:...`, when given) in the slot that is not live; every other
    service keeps what it runs, by the ref it runs (cron, when none runs: the live release, else the new one)."""
    old = site.live
    new = other(old)
    tags_: Tags = {"blue": site.ref("blue"), "green": site.ref("green"), "cron": running_ref(site.cron)}
    tags_[new] = pin or tag
    tags_["cron"] = tags_["cron"] or site.live_ref or tags_[new]
    return Slots(old, new, tags_, running_ref(site.cron))


@dataclass
class Handover:
    """One handover in progress: what it works on and through, what it decided, and how far it got."""

    port: DockerPort
    reporter: Reporter
    label: str  # the host's
    config: DeployConfig
    site: Site
    tag: str
    report: DeployReport
    kind: str = "deploy"  # what the history records: deploy, or rollback
    digests: frozenset[str] = frozenset()  # what the new containers' images must be (empty: not checked)
    platform: str | None = None  # the host's, that the new image must be built for
    pin: str | None = None  # `tag@sha256:...`: what the new release starts from
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep  # the watch window's pace
    slots: Slots = field(init=False)
    container: Started | None = None  # the new web container, once started
    started_at: float = 0.0  # when the new container was started
    ready_at: float = 0.0  # when it was healthy
    switched: bool = False  # the proxy sends requests to the new slot

    def __post_init__(self) -> None:
        self.slots = plan_handover(self.site, self.tag, self.pin)
        self.report.slot = self.slots.new

    @property
    def proxy(self) -> ProxyPort:
        return self.port.proxy

    @property
    def old(self) -> str | None:
        return self.slots.old

    @property
    def new(self) -> str:
        return self.slots.new

    @property
    def tags(self) -> Tags:
        return self.slots.tags

    def say(self, message: str) -> None:
        """One line of progress, about this host."""
        self.reporter.step(f"{self.label}: {message}")

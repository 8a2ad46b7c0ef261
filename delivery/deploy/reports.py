"""The typed reports of the deployers that are not dataclasses of their own module: a dry run's prediction,
and a compose host's or a swarm's status.

Both the text formatters (delivery/ui/text.py) and `--json` read them; `as_dict()` is the JSON,
unchanged from the dicts the toolkit has always printed. The deploy reports themselves are the
dataclasses DeployReport (delivery/deploy/compose/handover.py) and SwarmReport (delivery/deploy/swarm/rollout.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

from delivery.release.pullreport import PullPlan


class Reportable(Protocol):
    """A typed report whose JSON form is its as_dict()."""

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PullPrediction:
    """`deploy --dry-run` on a compose host: what its engine would download of the release."""

    host: str
    platform: str
    plan: PullPlan

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "platform": self.platform, **self.plan.prediction(), "dry_run": True}


# -- a compose host's status ------------------------------------------------------------------------
class ContainerEntry(TypedDict):
    tag: str | None
    image: str
    state: str
    health: str | None
    started_at: str | None
    digest: str | None


class ProxyEntry(TypedDict):
    image: str
    state: str
    started_at: str | None


class HistoryItem(TypedDict):
    time: str
    kind: str
    tag: str
    image_id: str


class ReleasesEntry(TypedDict):
    count: int
    keep_releases: int
    bytes: int


class Freshness(TypedDict, total=False):
    """The running image's base digest, deps age and newer deps image (delivery/supply/refresh.py), or the error reading them."""

    deps_tag: str | None
    base_name: str | None
    base_digest: str | None
    built_at: str | None
    age_days: float | None
    newer: str | None
    error: str


class HostStatusEntry(TypedDict, total=False):
    host: str
    image_store: str
    platform: str
    engine: str
    live_slot: str | None
    running: ContainerEntry | None
    slots: dict[str, ContainerEntry | None]
    cron: ContainerEntry | None
    proxy: ProxyEntry | None
    lock: str | None
    history: list[HistoryItem]
    releases: ReleasesEntry
    deps: Freshness


@dataclass(frozen=True)
class HostStatus:
    """`status` of one compose host."""

    entry: HostStatusEntry

    def as_dict(self) -> dict[str, Any]:
        return dict(self.entry)


# -- a swarm's status -------------------------------------------------------------------------------
class SwarmNodeState(TypedDict):
    state: str
    availability: str
    address: str


class SwarmTask(TypedDict):
    node: str
    state: str
    health: str | None
    tag: str | None
    digest: str | None


class TaskCounts(TypedDict):
    running: int
    healthy: int


class SwarmService(TypedDict):
    image: str
    tag: str | None
    replicas: int | str
    update_state: str
    update_message: str | None
    per_node: dict[str, TaskCounts]
    tasks: list[SwarmTask]


class SwarmStatusEntry(TypedDict):
    mode: str
    host: str
    stack: str
    nodes: dict[str, SwarmNodeState]
    services: dict[str, SwarmService]


@dataclass(frozen=True)
class SwarmStatus:
    """`status` of a swarm stack, through its manager."""

    entry: SwarmStatusEntry

    def as_dict(self) -> dict[str, Any]:
        return dict(self.entry)

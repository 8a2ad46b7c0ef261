"""What a deploy or rollback on one compose host reports: the `--json` fields and what the formatter reads
(delivery/usecases/releasing.py, format_report)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class DeployReport:
    """One host's deploy or rollback: what `--json` shows, field by field."""

    host: str
    image: str
    version: str
    digest: str  # the image manifest of the host's platform
    store: str = ""
    platform: str = ""  # the host's, from its engine (docker info): the release's image for it was pulled
    index_digest: str | None = None  # what the tag names when the release is multi-platform (engines record it)
    previous: str | None = None
    predicted_layers: int = 0  # predicted before the pull (manifest against the host's layers)
    total_layers: int = 0
    predicted_bytes: int = 0  # predicted: layer blobs + config, compressed, as the registry serves them
    total_bytes: int = 0
    measured_layers: int = 0  # measured: layers the engine's pull progress reported downloading
    measured_bytes: int = 0  # measured: their sizes as it printed them (4 significant digits; no config)
    pull_seconds: float = 0.0
    seconds_to_healthy: float | None = None
    healthy: bool = False
    rolled_back: bool = False  # a failed deploy: the previous release kept serving / a rollback that took over
    error: str | None = None
    slot: str | None = None  # the web slot (blue, green) the release was started in
    switch_seconds: float | None = None  # from the new container healthy to the proxy switched
    drain_seconds: float | None = None  # the old container's in-flight requests finishing
    monitor: dict[str, Any] | None = None  # the watch window: requests and errors the proxy counted
    proxy_restarts: int = 0  # the proxy container restarted during the deploy (its restart policy acted)
    seconds: float = 0.0  # wall time of the whole deploy on this host
    pruned: dict[str, Any] | None = None  # retention after a healthy deploy (delivery/hosts/retention.py)
    web_live: bool = False  # the web switch is final and recorded in the history (a cron failure after it undoes nothing)
    cron: str | None = None  # the cron outcome, reported on its own line: "runs TAG", or "failed: why"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

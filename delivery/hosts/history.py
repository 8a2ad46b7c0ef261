"""The per-host deploy history: one small named volume per entry, its labels the entry.

Each entry is a volume <compose project>-history-<UTC time>-<kind>-<app tag> with the labels
production-control.history=<project>, time, kind, tag and image_id. Labels cannot change, so an
entry is written once, by creating its volume. Named volumes survive `docker image prune -a`,
`docker network prune` and `docker system prune` (with or without --volumes, Engine 23 and later):
the history is lost only to `docker volume rm` or `docker volume prune --all`.

Each deploy also tags the deployed image <project>-history:<time>-<kind>-<app tag>, as before this
store existed: those tags keep earlier releases' images on the host, so a rollback needs no pull
(after `docker image prune -a`, a rollback pulls the release again). Hosts deployed by older
toolkits have only those tags: `history` reads both, and `record` copies the tag-only entries into
volumes, so the first deploy or rollback with this toolkit makes the old history prune-proof too.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.docker.engine import docker_errors, volume_labels

_HISTORY_TAG = re.compile(r"(?P<time>[0-9]{8}T[0-9]{12}Z)-(?P<kind>deploy|rollback|restore)-(?P<tag>.+)")
HISTORY_LABEL = "production-control.history"  # its value: the compose project


def history_repository(project: str) -> str:
    return f"{project}-history"


@dataclass(frozen=True)
class HistoryEntry:
    time: str
    kind: str  # deploy | rollback (asked for) | restore (automatic, after a failed deploy)
    tag: str
    image_id: str

    @classmethod
    def parse(cls, history_tag: str, image_id: str) -> HistoryEntry | None:
        match = _HISTORY_TAG.fullmatch(history_tag)
        if match is None:
            return None
        return cls(time=match["time"], kind=match["kind"], tag=match["tag"], image_id=image_id)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> HistoryEntry | None:
        """The entry an entry volume's labels hold; None for labels that are not a well-formed entry."""
        entry = cls.parse(f"{labels.get('time', '')}-{labels.get('kind', '')}-{labels.get('tag', '')}", labels.get("image_id", ""))
        return entry if entry is not None and entry.image_id else None

    @property
    def key(self) -> str:
        return f"{self.time}-{self.kind}-{self.tag}"


def history_tag(when: datetime, kind: str, release_tag: str) -> str:
    """The tag of one history entry: a UTC time stamp that sorts as text, the kind, the release."""
    return f"{when.astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{kind}-{release_tag}"


def entry_volume(project: str, entry: HistoryEntry) -> str:
    """The name of the volume that holds `entry`."""
    return f"{history_repository(project)}-{entry.key}"


def entry_labels(project: str, entry: HistoryEntry) -> dict[str, str]:
    return {HISTORY_LABEL: project, "time": entry.time, "kind": entry.kind, "tag": entry.tag, "image_id": entry.image_id}


def merged(stored: Iterable[HistoryEntry], tagged: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """The history from both stores (volumes first: an entry in both is the volume's), newest first."""
    entries: dict[str, HistoryEntry] = {}
    for entry in [*stored, *tagged]:
        entries.setdefault(entry.key, entry)
    return sorted(entries.values(), key=lambda e: e.time, reverse=True)


def _write(docker: DockerClient, project: str, entry: HistoryEntry) -> None:
    docker.volume.create(entry_volume(project, entry), driver="local", labels=entry_labels(project, entry))


def record(docker: DockerClient, project: str, kind: str, release_tag: str, image_id: str) -> None:
    """Add an entry (its volume, and the history tag that keeps the image); first copy tag-only entries to volumes."""
    entry = HistoryEntry.parse(history_tag(datetime.now(UTC), kind, release_tag), image_id)
    assert entry is not None
    with docker_errors("recording the deploy history"):
        stored = {e.key for e in stored_entries(docker, project)}
        for old in tagged_entries(docker, project):
            if old.key not in stored:
                _write(docker, project, old)
        _write(docker, project, entry)
        docker.image.tag(image_id, f"{history_repository(project)}:{entry.key}")


def forget(docker: DockerClient, project: str, entries: Iterable[HistoryEntry]) -> None:
    """Remove entries' volumes (retention, for releases it pruned); an entry without one is skipped."""
    for entry in entries:
        with contextlib.suppress(DockerException):
            docker.volume.remove(entry_volume(project, entry))


def stored_entries(docker: DockerClient, project: str) -> list[HistoryEntry]:
    """The entries kept in volumes."""
    names = str(run([*docker.docker_cmd, "volume", "ls", "--quiet", "--filter", f"label={HISTORY_LABEL}={project}"])).split()
    if not names:
        return []
    entries = (HistoryEntry.from_labels(labels) for labels in volume_labels(docker, *names))
    return [e for e in entries if e is not None]


def tagged_entries(docker: DockerClient, project: str) -> list[HistoryEntry]:
    """The entries kept as history tags (all an older toolkit wrote)."""
    repository = history_repository(project)
    entries = []
    for image in docker.image.list(repository):
        for ref in image.repo_tags or []:
            repo, _, tag = ref.rpartition(":")
            if repo == repository:
                entry = HistoryEntry.parse(tag, image.id)
                if entry:
                    entries.append(entry)
    return entries


def history(docker: DockerClient, project: str) -> list[HistoryEntry]:
    """The host's deploy history for the project, newest first."""
    with docker_errors("reading the deploy history"):
        return merged(stored_entries(docker, project), tagged_entries(docker, project))


def rollback_target(entries: list[HistoryEntry], current: str | None, to: str | None = None) -> HistoryEntry | None:
    """Where a rollback goes: `to`, or the release that served before the current one.

    The history (newest first) is replayed as a stack of releases: a deploy pushes its
    release, a rollback pops back down to its target. So repeated rollbacks walk back
    (C -> B -> A) instead of flipping between the last two, and a release that was
    rolled back away from is never a rollback target again.
    """
    newest: dict[str, HistoryEntry] = {}
    for entry in entries:
        newest.setdefault(entry.tag, entry)
    if to is not None:
        return newest.get(to) if to != current else None
    stack: list[str] = []
    for entry in reversed(entries):
        if entry.kind == "deploy" and (not stack or stack[-1] != entry.tag):
            stack.append(entry.tag)
        elif entry.kind == "rollback":
            while stack and stack[-1] != entry.tag:
                stack.pop()
            if not stack:
                stack.append(entry.tag)
    while stack and stack[-1] == current:
        stack.pop()
    return newest[stack[-1]] if stack else None

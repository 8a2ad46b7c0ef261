"""The per-host deploy history: image tags <compose project>-history:<UTC time>-<kind>-<app tag>.

Each tag points at the image that was deployed, so the history also keeps earlier
releases' images on the host: a rollback needs no pull.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from python_on_whales import DockerClient

from delivery.engine import docker_errors

_HISTORY_TAG = re.compile(r"(?P<time>[0-9]{8}T[0-9]{12}Z)-(?P<kind>deploy|rollback|restore)-(?P<tag>.+)")


def history_repository(project: str) -> str:
    return f"{project}-history"


@dataclass(frozen=True)
class HistoryEntry:
    time: str
    kind: str  # deploy | rollback (asked for) | restore (automatic, after a failed deploy)
    tag: str
    image_id: str

    @classmethod
    def parse(cls, history_tag: str, image_id: str) -> "HistoryEntry | None":
        match = _HISTORY_TAG.fullmatch(history_tag)
        if match is None:
            return None
        return cls(time=match["time"], kind=match["kind"], tag=match["tag"], image_id=image_id)


def history_tag(when: datetime, kind: str, release_tag: str) -> str:
    """The tag of one history entry: a UTC time stamp that sorts as text, the kind, the release."""
    return f"{when.astimezone(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}-{kind}-{release_tag}"


def record(docker: DockerClient, project: str, kind: str, release_tag: str, image_id: str) -> None:
    with docker_errors("recording the deploy history"):
        docker.image.tag(image_id, f"{history_repository(project)}:{history_tag(datetime.now(timezone.utc), kind, release_tag)}")


def history(docker: DockerClient, project: str) -> list[HistoryEntry]:
    """The host's deploy history for the project, newest first."""
    repository = history_repository(project)
    with docker_errors("reading the deploy history"):
        images = docker.image.list(repository)
    entries = []
    for image in images:
        for ref in image.repo_tags or []:
            repo, _, history_tag = ref.rpartition(":")
            if repo == repository:
                entry = HistoryEntry.parse(history_tag, image.id)
                if entry:
                    entries.append(entry)
    return sorted(entries, key=lambda e: e.time, reverse=True)


def rollback_target(entries: list[HistoryEntry], current: str | None, to: str | None = None) -> HistoryEntry | None:
    """Where a rollback goes: `to`, or the release that served before the current one.

    The history (newest first) is replayed as a stack of releases: a deploy pushes its
    release, a rollback pops back down to its target. So repeated rollbacks walk back
    (C -> B -> A) instead of flipping between the last two, and a release that was
    rolled back away from is never a rollback target again.
    """
    newest = {}
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

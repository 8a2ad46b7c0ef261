"""Release retention on a host: keep the newest N releases, prune the rest, measure what it freed.

A release is on a host through its history tags (delivery/hosts/history.py) and its release tag
(<registry>/production-control:<tag>). Pruning untags those and forgets the pruned releases'
history entries (their volumes), and the engine deletes an image when its last tag goes, with the layers no other image holds. Never pruned: the
newest N releases, the running release, the rollback target, and any image a container
uses (of any compose project) or another project's history keeps.

The plan is pure (`plan_prune`, `predict_freed`); `prune` reads the host, applies the plan,
and measures the bytes freed from the engine's disk usage (`docker system df`) before and
after, reported beside the prediction.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.docker.engine import disk_usage, docker_errors, last_line
from delivery.errors import DeliveryError
from delivery.hosts.history import HistoryEntry, forget, history, history_repository, rollback_target
from delivery.hosts.lock import deploy_lock
from delivery.hosts.target import Target
from delivery.images import tags
from delivery.release.pullreport import chain_ids
from delivery.reporting import Reporter

SETTLE_SECONDS = 10.0  # the containerd store deletes content in the background: wait for df to settle


@dataclass(frozen=True)
class HostImage:
    """An image on the host: its id, its references, and its layers (chain ids, base first)."""

    id: str
    refs: tuple[str, ...]
    layers: tuple[str, ...]


@dataclass(frozen=True)
class PrunePlan:
    keep: int
    kept: tuple[str, ...]  # release tags kept, newest first
    why_kept: Mapping[str, str]  # tag -> why it is protected (running, rollback target, used by a container)
    pruned: tuple[str, ...]  # release tags pruned, newest first
    remove_refs: tuple[str, ...]  # image references to untag
    deleted_images: tuple[str, ...]  # image ids that lose their last reference (the engine deletes them)


def releases_newest_first(entries: Sequence[HistoryEntry]) -> list[str]:
    """Distinct release tags of a history (newest first), ordered by their last deploy or rollback."""
    seen: list[str] = []
    for entry in entries:
        if entry.tag not in seen:
            seen.append(entry.tag)
    return seen


def plan_prune(
    entries: Sequence[HistoryEntry],
    images: Iterable[HostImage],
    in_use: Iterable[str],
    keep: int,
    project: str,
    release_ref: Callable[[str], str],
) -> PrunePlan:
    """Which releases to keep and which references to remove so that only the newest `keep` stay.

    `entries` is the project's history, newest first (its first entry is what runs since the
    last deploy or rollback); `in_use` the ids of images any container uses.
    """
    if keep < 1:
        raise DeliveryError(f"invalid keep {keep}: keep at least 1 release (the running one)")
    images = list(images)
    in_use = set(in_use)
    own_history = history_repository(project)
    releases = releases_newest_first(entries)
    image_of = {tag: [e.image_id for e in entries if e.tag == tag] for tag in releases}
    why: dict[str, str] = {}
    if releases:
        why.setdefault(releases[0], "running")
        target = rollback_target(list(entries), releases[0])
        if target:
            why.setdefault(target.tag, "rollback target")
    for tag in releases:
        if any(image_id in in_use for image_id in image_of[tag]):
            why.setdefault(tag, "used by a container")
    kept = [tag for i, tag in enumerate(releases) if i < keep or tag in why]
    pruned = [tag for tag in releases if tag not in kept]

    refs_of = {image.id: set(image.refs) for image in images}
    remove: list[str] = []
    for tag in pruned:
        for entry in entries:
            if entry.tag == tag:
                remove.append(f"{own_history}:{entry.time}-{entry.kind}-{tag}")
        ref = release_ref(tag)
        for image_id, refs in refs_of.items():
            others_history = any(r.rpartition(":")[0].endswith("-history") and not r.startswith(f"{own_history}:") for r in refs)
            if ref in refs and not others_history and image_id not in in_use:
                remove.append(ref)
    remove = [ref for ref in dict.fromkeys(remove) if any(ref in refs for refs in refs_of.values())]
    removing = set(remove)
    deleted = tuple(
        image.id for image in images
        if image.refs and set(image.refs) <= removing and image.id not in in_use
    )  # fmt: skip
    return PrunePlan(keep, tuple(kept), {t: why[t] for t in kept if t in why},
                     tuple(pruned), tuple(remove), deleted)


def predict_freed(
    deleted: Mapping[str, Sequence[tuple[str, int]]], images: Iterable[HostImage]
) -> int:
    """Bytes freed when the `deleted` images go: the sizes of their layers that no other image holds.

    `deleted` maps each deleted image id to its (layer chain id, bytes) pairs.
    """
    held_elsewhere = {layer for image in images if image.id not in deleted for layer in image.layers}
    sizes: dict[str, int] = {}
    for layers in deleted.values():
        for layer, size in layers:
            if layer not in held_elsewhere:
                sizes[layer] = size
    return sum(sizes.values())


def layer_sizes(layers: Sequence[str], history_sizes: Sequence[int]) -> list[tuple[str, int]]:
    """Pair an image's layers (base first) with their sizes from `docker image history` (newest first).

    History has one entry per build step, layers only for the steps that wrote files; a step
    that wrote nothing has size 0. When the non-empty steps are as many as the layers they
    pair one to one; otherwise (a layer of 0 bytes) the sizes go to the topmost layers, which
    only blurs the prediction for images that share part of their stack.
    """
    sizes = [size for size in reversed(history_sizes) if size > 0]
    padded = [0] * max(0, len(layers) - len(sizes)) + sizes[-len(layers):] if layers else []
    return list(zip(layers, padded, strict=False))


# -- the host --------------------------------------------------------------------------------------
@dataclass
class HostState:
    entries: list[HistoryEntry]
    images: list[HostImage]
    in_use: set[str]


def read_host(docker: DockerClient, project: str) -> HostState:
    entries = history(docker, project)
    with docker_errors("listing the host's images and containers"):
        listed = docker.image.list(all=True)
        containers = docker.container.list(all=True)
    images = [
        HostImage(image.id, tuple(image.repo_tags or ()), tuple(chain_ids(image.root_fs.layers or [])))
        for image in listed
    ]  # fmt: skip
    return HostState(entries, images, {container.image for container in containers})


def history_sizes(docker: DockerClient, image_id: str) -> list[int]:
    """The sizes of an image's build steps, newest first, in bytes."""
    with docker_errors(f"reading the layers of {image_id[:19]}"):
        out = run([*map(str, docker.client_config.docker_cmd), "image", "history", "--no-trunc", "--human=false",
                   "--format", "{{json .}}", image_id])
    return [int(json.loads(line).get("Size") or 0) for line in str(out).splitlines() if line.strip()]


def sized_layers(docker: DockerClient, image: HostImage) -> list[tuple[str, int]]:
    return layer_sizes(image.layers, history_sizes(docker, image.id))


def settled_disk_usage(docker: DockerClient, before: int | None = None) -> int:
    """The engine's image disk usage, read until two reads agree (content deletion may lag)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    last = disk_usage(docker)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = disk_usage(docker)
        if now == last:
            return now
        last = now
    return last


@dataclass
class PruneReport:
    host: str
    keep: int
    kept: list[str]
    why_kept: dict[str, str]
    pruned: list[str]
    removed_refs: list[str]
    deleted_images: int
    predicted_freed_bytes: int  # prediction: layers only the deleted images held
    freed_bytes: int | None = None  # measurement: `docker system df` before minus after (None for a dry run)
    disk_before: int | None = None
    disk_after: int | None = None
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prune_releases(target: Target, keep: int, reporter: Reporter, dry_run: bool = False) -> PruneReport:
    """Plan, and unless `dry_run` apply, the retention of `keep` releases on one host (the caller holds the lock)."""
    docker, project = target.docker, target.config.compose_project
    state = read_host(docker, project)
    plan = plan_prune(state.entries, state.images, state.in_use, keep, project,
                      lambda tag: tags.image_ref(target.config.registry, tags.APP_REPOSITORY, tag))
    by_id = {image.id: image for image in state.images}
    predicted = predict_freed({i: sized_layers(docker, by_id[i]) for i in plan.deleted_images}, state.images)
    report = PruneReport(target.host.label, keep, list(plan.kept), dict(plan.why_kept), list(plan.pruned),
                         list(plan.remove_refs), len(plan.deleted_images), predicted, dry_run=dry_run)
    if dry_run:
        return report
    # The history outlives the images (`docker image prune -a`): a pruned release leaves it even when its tags are gone.
    forget(docker, project, [entry for entry in state.entries if entry.tag in plan.pruned])
    if not plan.remove_refs:
        return report
    report.disk_before = settled_disk_usage(docker)
    for ref in plan.remove_refs:
        try:
            docker.image.remove(ref)
        except DockerException as exc:  # e.g. a container started on it meanwhile: it stays
            report.errors.append(f"{ref}: {last_line(exc)}")
    report.disk_after = settled_disk_usage(docker)
    report.freed_bytes = report.disk_before - report.disk_after
    reporter.step(f"{target.host.label}: pruned {len(plan.pruned)} release(s), kept {len(plan.kept)}: "
        f"freed {report.freed_bytes} bytes (predicted {predicted})")
    return report


def prune(target: Target, keep: int, reporter: Reporter, dry_run: bool = False) -> PruneReport:
    """`invoke prune` on one host: under the deploy lock (a dry run takes none)."""
    if dry_run:
        return prune_releases(target, keep, reporter, dry_run=True)
    with deploy_lock(target.docker, target.config.compose_project, target.host.label, target.host_arg,
                     target.config.lock_wait, reporter):
        return prune_releases(target, keep, reporter)


def prune_after_deploy(target: Target, reporter: Reporter) -> dict[str, Any]:
    """Retention after a healthy deploy (the deploy holds the lock). A failure here is reported, never raised:
    the deploy itself succeeded."""
    try:
        return prune_releases(target, target.config.keep_releases, reporter).as_dict()
    except (DeliveryError, DockerException) as exc:
        reason = str(exc) if isinstance(exc, DeliveryError) else last_line(exc)
        reporter.step(f"{target.host.label}: warning: pruning old releases failed ({reason}); the deploy succeeded, "
            f"retry with `invoke prune --host {target.host_arg}`")
        return {"host": target.host.label, "errors": [reason]}


def usage(target: Target) -> dict[str, Any]:
    """For `status`: how many releases the host keeps, and the bytes their images take together."""
    state = read_host(target.docker, target.config.compose_project)
    releases = releases_newest_first(state.entries)
    ids = {e.image_id for e in state.entries}
    by_id = {image.id: image for image in state.images}
    sizes: dict[str, int] = {}
    for image_id in ids & by_id.keys():
        sizes.update(sized_layers(target.docker, by_id[image_id]))
    return {"count": len(releases), "keep_releases": target.config.keep_releases, "bytes": sum(sizes.values())}

"""Measuring a pull: the registry's access log is the ground truth of what a server downloaded.

`measured_pull` wraps an ordinary pull (python-on-whales, on the server's
engine): it notes where the registry's log ends, pulls, and reads the accesses
appended meanwhile. Only GET 200 blob downloads of the pulled image's own blobs
(its config and layers) count, each once, so another client pulling something
else at the same moment does not add to the figure. The prediction of
delivery.release.pullreport (from what the server held before) is kept next to it as a
cross-check.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.servers import Server
from delivery.config.references import split_image_ref
from delivery.docker.engine import image_layers
from delivery.registry.client import Manifest, Registry
from delivery.release.pullreport import host_layers, parse_access_log, plan_pull, served_blob_bytes


@dataclass(frozen=True)
class ImageFacts:
    """An image as the registry holds it."""

    ref: str
    repository: str
    tag: str
    manifest: Manifest
    diff_ids: tuple[str, ...]
    history: tuple[str, ...]  # created_by of each non-empty layer, bottom to top
    config_parts: dict[str, int] = field(default_factory=dict)  # what the config's bytes go to (config_parts)

    @property
    def total_bytes(self) -> int:
        """Compressed size: every layer plus the config, as a pull from nothing downloads it."""
        return self.manifest.layer_bytes + self.manifest.config.size

    @property
    def blobs(self) -> dict[str, int]:
        return {self.manifest.config.digest: self.manifest.config.size, **{b.digest: b.size for b in self.manifest.layers}}


def config_parts(config: dict) -> dict[str, int]:
    """What the image config's bytes go to, each part as compact JSON (as BuildKit writes it): the history
    (one entry per instruction of the image's stages) and the labels; both are ours to shrink."""
    def size(value: object) -> int:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())

    history = config.get("history", [])
    return {"config_history_bytes": size(history), "config_history_entries": len(history),
            "config_label_bytes": size((config.get("config") or {}).get("Labels") or {})}


def layers_moved_below(image: ImageFacts, previous: ImageFacts | None, below: int) -> list[int]:
    """Pure: which of the bottom `below` layers (the base image, the OS layer, the venv skeleton: only a base
    change or a refresh should move them) differ from `previous`'s. A release that moves one anyway was built
    from a build cache older than the Debian archive `previous` was built from: its bytes are not the change's."""
    if previous is None:
        return []
    old = previous.manifest.layers[:below]
    return [index for index, layer in enumerate(image.manifest.layers[:below])
            if index >= len(old) or old[index].digest != layer.digest]


def floor_bytes(image: ImageFacts, previous: ImageFacts | None) -> dict[str, int]:
    """The physical floor of pulling `image` onto a server that holds `previous` (None: nothing):
    the layers `previous` lacks, the config if it is new, and the manifest. Any store must
    download at least that; the containerd store downloads exactly that."""
    held = {layer.digest for layer in previous.manifest.layers} if previous else set()
    changed = sum(layer.size for layer in image.manifest.layers if layer.digest not in held)
    new_config = previous is None or previous.manifest.config.digest != image.manifest.config.digest
    config = image.manifest.config.size if new_config else 0
    return {"changed_layer_bytes": changed, "config_bytes": image.manifest.config.size,
            "floor_bytes": changed + config + image.manifest.size}


@dataclass(frozen=True)
class Pull:
    store: str
    bytes: int  # blob bytes served (GET 200), config included
    manifest_bytes: int  # manifest bytes served (GET 200 of the image's tag or digests)
    layer_bytes: int  # of which layers
    layers: int  # layer blobs downloaded
    total_layers: int
    seconds: float
    predicted_bytes: int  # delivery.release.pullreport's prediction, for the cross-check


def image_facts(registry: Registry, ref: str) -> ImageFacts:
    _, repository, tag, _ = split_image_ref(ref)
    manifest = registry.manifest(repository, tag)
    config = registry.config(repository, manifest)
    history = tuple(
        (h.get("created_by") or "").strip() for h in config.get("history", []) if not h.get("empty_layer")
    )
    return ImageFacts(ref, repository, tag, manifest, tuple(config.get("rootfs", {}).get("diff_ids", [])), history,
                      config_parts(config))


def added_layers(image: ImageFacts, below: ImageFacts) -> int:
    """Compressed bytes of the layers `image` has that `below` (the image it was built FROM) lacks."""
    present = {layer.digest for layer in below.manifest.layers}
    return sum(layer.size for layer in image.manifest.layers if layer.digest not in present)


def served(log_text: str, image: ImageFacts) -> dict[str, int]:
    """Pure: {digest: bytes} of this image's blobs the registry served with GET 200 (each digest once)."""
    wanted = image.blobs
    result: dict[str, int] = {}
    for access in parse_access_log(log_text):
        digest = access.path.rsplit("/", 1)[-1]
        is_download = served_blob_bytes([access], image.repository)[0] == 1  # a GET 200 of a blob of this repository
        if digest in wanted and digest not in result and is_download:
            result[digest] = access.size
    return result


def served_manifests(log_text: str, image: ImageFacts) -> int:
    """Pure: bytes of this image's manifests (by tag, digest or index digest) the registry served with GET 200."""
    refs = {image.tag, image.manifest.digest, image.manifest.index_digest} - {None}
    prefix = f"/v2/{image.repository}/manifests/"
    return sum(a.size for a in parse_access_log(log_text)
               if a.method == "GET" and a.status == 200 and a.path.startswith(prefix) and a.path[len(prefix):] in refs)


def measured_pull(server: Server, image: ImageFacts, log_path: Path) -> Pull:
    before = host_layers(server.store, image_layers(server.docker))
    predicted = plan_pull(image.ref, image.manifest, image.diff_ids, before)
    offset = log_path.stat().st_size
    start = time.monotonic()
    server.docker.image.pull(image.ref, quiet=True)
    seconds = time.monotonic() - start
    time.sleep(0.2)  # the registry logs a download when its response completes
    with log_path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    downloads = served(text, image)
    config = image.manifest.config.digest
    return Pull(
        store=server.store,
        bytes=sum(downloads.values()),
        manifest_bytes=served_manifests(text, image),
        layer_bytes=sum(size for digest, size in downloads.items() if digest != config),
        layers=sum(1 for digest in downloads if digest != config),
        total_layers=len(image.manifest.layers),
        seconds=round(seconds, 2),
        predicted_bytes=predicted.pulled_bytes,
    )

"""What a pull downloads: predicted from the registry manifest against what a host has, and measured.

Docker does not report pulled bytes. The prediction follows each image store's rule:
- overlay2 (classic store): a layer is skipped only if its whole chain (ChainID: the
  layer and every layer below it) is present, so a changed layer re-pulls all above it;
- containerd store: a layer is skipped if its content is present anywhere.
The registry's access log is the ground truth; `served_blob_bytes` reads it.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from delivery.registry.client import Manifest


@dataclass(frozen=True)
class HostLayers:
    """What a host already has, in the terms both image stores use."""

    store: str  # "overlay2" or "containerd"
    diff_ids: frozenset[str]
    chain_ids: frozenset[str]
    image_ids: frozenset[str]  # image ids and repo digests' sha256 parts


@dataclass(frozen=True)
class PullPlan:
    image: str
    digest: str
    store: str
    total_layers: int
    pulled_layers: int
    total_bytes: int
    pulled_bytes: int  # layer blobs plus the config blob, as the registry serves them (compressed)
    pulled_digests: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def prediction(self) -> dict[str, Any]:
        """What a report shows of it: the layers and bytes a pull is predicted to download, named so."""
        return {"image": self.image, "digest": self.digest, "store": self.store,
                "predicted_layers": self.pulled_layers, "total_layers": self.total_layers,
                "predicted_bytes": self.pulled_bytes, "total_bytes": self.total_bytes,
                "predicted_digests": list(self.pulled_digests)}


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The ChainID of each layer: the identity of the layer together with all layers below it."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return chains


def host_layers(store: str, images: Iterable[tuple[str, Sequence[str], Sequence[str]]]) -> HostLayers:
    """Pure: HostLayers from (image id, repo digests, rootfs diff ids) of every image on a host."""
    diff_ids: set[str] = set()
    chains: set[str] = set()
    ids: set[str] = set()
    for image_id, repo_digests, layers in images:
        ids.add(image_id)
        ids.update(ref.rsplit("@", 1)[-1] for ref in repo_digests)
        diff_ids.update(layers)
        chains.update(chain_ids(list(layers)))
    return HostLayers(store, frozenset(diff_ids), frozenset(chains), frozenset(ids))


def plan_pull(image: str, manifest: Manifest, diff_ids: Sequence[str], host: HostLayers) -> PullPlan:
    """Pure: which layers of `manifest` the host must download, and how many bytes."""
    if len(diff_ids) != len(manifest.layers):
        raise ValueError("the image config and manifest disagree on the number of layers")
    present = manifest.digest in host.image_ids or manifest.config.digest in host.image_ids
    pulled: list[tuple[str, int]] = []
    if not present:
        chains = chain_ids(diff_ids)
        for blob, diff_id, chain in zip(manifest.layers, diff_ids, chains, strict=False):
            skipped = chain in host.chain_ids if host.store == "overlay2" else (diff_id in host.diff_ids or chain in host.chain_ids)
            if not skipped:
                pulled.append((blob.digest, blob.size))
    pulled_bytes = sum(size for _, size in pulled) + (0 if present else manifest.config.size)
    return PullPlan(
        image=image,
        digest=manifest.digest,
        store=host.store,
        total_layers=len(manifest.layers),
        pulled_layers=len(pulled),
        total_bytes=manifest.layer_bytes + manifest.config.size,
        pulled_bytes=pulled_bytes,
        pulled_digests=tuple(digest for digest, _ in pulled),
    )


# -- the registry's access log: what was really served --------------------------------------
ACCESS_LINE = re.compile(
    r'^(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) (?P<size>\d+|-)'
)


@dataclass(frozen=True)
class Access:
    method: str
    path: str
    status: int
    size: int

    @property
    def is_blob(self) -> bool:
        return "/blobs/sha256:" in self.path


def parse_access_log(text: str) -> list[Access]:
    """Pure: the HTTP accesses in a registry log (combined log format lines; other lines are skipped)."""
    accesses = []
    for line in text.splitlines():
        match = ACCESS_LINE.match(line)
        if match:
            size = match.group("size")
            accesses.append(Access(match.group("method"), match.group("path"), int(match.group("status")), 0 if size == "-" else int(size)))
    return accesses


def served_blob_bytes(accesses: Iterable[Access], repository: str | None = None) -> tuple[int, int]:
    """(blob downloads, bytes) the registry served with GET 200, optionally for one repository."""
    count = total = 0
    for access in accesses:
        if access.method == "GET" and access.status == 200 and access.is_blob:
            if repository is None or access.path.startswith(f"/v2/{repository}/blobs/"):
                count += 1
                total += access.size
    return count, total


def human_bytes(n: int) -> str:
    """1234567 -> '1.2 MB' (decimal units, as registries and docker print)."""
    if n < 1000:
        return f"{n} B"
    size = float(n)
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if round(size, 1) < 1000 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


# -- what the engine says it downloaded -----------------------------------------------------------------
_PROGRESS = re.compile(
    r"(?P<layer>\b[0-9a-f]{12}) (?P<action>Downloading|Extracting)\s+\[[=> ]*\]\s+"
    r"(?P<done>[0-9.]+ ?[kMGT]?B)/(?P<total>[0-9.]+ ?[kMGT]?B)"
)
_DONE = re.compile(r"(?P<layer>\b[0-9a-f]{12}) (?:Download complete|Pull complete)")
_UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}


def engine_size(text: str) -> int:
    """'5.339kB' -> 5339: a size as the engine prints it (decimal units, four significant digits)."""
    number, unit = re.fullmatch(r"([0-9.]+) ?([kMGT]?B)", text.strip()).groups()  # type: ignore[union-attr]
    return round(float(number) * _UNITS[unit])


@dataclass(frozen=True)
class EngineDownload:
    """Layers and bytes the engine's pull progress reported: a measurement, rounded as it prints sizes
    (four significant digits); the image config, which it does not report, is not in it."""

    layers: int
    bytes: int


def engine_download(lines: Iterable[str]) -> EngineDownload:
    """Pure: what the compose/docker pull progress lines say was downloaded."""
    sizes: dict[str, int] = {}
    extracted: dict[str, int] = {}
    done: set[str] = set()
    for line in lines:
        for match in _PROGRESS.finditer(line):
            into = sizes if match["action"] == "Downloading" else extracted
            into[match["layer"]] = max(into.get(match["layer"], 0), engine_size(match["total"]))
        done.update(match["layer"] for match in _DONE.finditer(line))
    layers = done | set(sizes)
    return EngineDownload(len(layers), sum(sizes.get(layer, extracted.get(layer, 0)) for layer in layers))

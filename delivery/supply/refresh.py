"""Refreshing the deps image, and telling how fresh a deployed one is.

A refresh (`invoke build-deps --refresh`) rebuilds the deps image without cache, so
on the base the registry serves now and with the Debian packages the archive serves
now. When its layers are the ones the current deps image has, nothing is pushed.
Otherwise it is pushed under the next patch version with the same content hash
(`deps-1.0.0-<hash>` -> `deps-1.0.1-<hash>`): `build-deps` and `build-app` use the
highest version of their content hash that is at least the project's deps version, so
the next app build is FROM the refreshed image without any change in the repository.

Before the push, `predict_refresh` says what a server running the current deps image
would download for the refreshed one, per image store, with the pull prediction of
delivery/release/pullreport.py (a prediction: `invoke deploy` measures the real pull).

Every deps build, refresh or not, is compared with the deps image it follows (`followed`)
before its push: one whose Debian packages went back (a build that took its `os` stage
from a builder cache older than that image) is refused (`refuse_older`), since pushing it
would revert Debian updates, security fixes included.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from debian.debian_support import Version

from delivery.config.platforms import AMD64
from delivery.config.versioning import bump, parse_semver
from delivery.errors import DeliveryError, OlderDebianPackages
from delivery.images import tags
from delivery.images.base import BASE_DIGEST_LABEL, BASE_NAME_LABEL
from delivery.registry.client import Manifest, Registry, blob_path, layout_manifests, parse_manifest
from delivery.release.pullreport import host_layers, plan_pull
from delivery.reporting import Reporter
from delivery.supply.sbom import fetch_sbom, sbom_packages

STORES = ("containerd", "overlay2")


# -- which deps image is current (pure) -----------------------------------------------------------
def deps_versions(tag_list: Sequence[str], content_hash: str) -> list[str]:
    """The versions pushed for `content_hash`, lowest first."""
    versions = []
    for tag in tag_list:
        try:
            parsed = tags.parse_deps_tag(tag)
        except DeliveryError:
            continue  # other tags (SBOMs, anything else)
        if parsed.content_hash == content_hash:
            versions.append(parsed.version)
    return sorted(versions, key=parse_semver)


def current_version(tag_list: Sequence[str], content_hash: str, project_version: str) -> str | None:
    """The highest pushed version of `content_hash` that is at least the project's deps version."""
    floor = parse_semver(project_version)
    eligible = [v for v in deps_versions(tag_list, content_hash) if parse_semver(v) >= floor]
    return eligible[-1] if eligible else None


def refresh_version(tag_list: Sequence[str], content_hash: str, project_version: str) -> str:
    """The version a refresh that differs is pushed as: one patch above the current one."""
    current = current_version(tag_list, content_hash, project_version)
    return bump(current, "patch") if current else project_version


# -- the built image (an OCI layout) --------------------------------------------------------------
def layout_image(layout: Path, descriptor: Mapping[str, Any] | None = None) -> tuple[Mapping[str, Any], Manifest, list[str]]:
    """(manifest descriptor, Manifest, diff ids) of an image in an OCI layout (default: its one image, or its index's first)."""
    descriptor = descriptor or layout_manifests(layout)[0][1]
    body = blob_path(layout, descriptor["digest"]).read_bytes()
    manifest = parse_manifest(json.loads(body), digest=descriptor["digest"], size=len(body))
    config = json.loads(blob_path(layout, manifest.config.digest).read_bytes())
    return descriptor, manifest, list(config["rootfs"]["diff_ids"])


def predict_refresh(old_config_digest: str, old_diff_ids: Sequence[str], image: str, new: Manifest,
                    new_diff_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Pure: what a server holding the current deps image would download for the new one, per store."""
    predictions = []
    for store in STORES:
        host = host_layers(store, [(old_config_digest, [], list(old_diff_ids))])
        plan = plan_pull(image, new, new_diff_ids, host)
        predictions.append({"store": store, "pulled_layers": plan.pulled_layers, "total_layers": plan.total_layers,
                            "pulled_bytes": plan.pulled_bytes, "total_bytes": plan.total_bytes})
    return predictions


def package_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Pure: `name old -> new` for each package that changed, appeared or went away."""
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before != after:
            changes.append(f"{name} {before or '(none)'} -> {after or '(none)'}")
    return changes


def previous_for_base(registry: Registry, tag_list: Sequence[str], base_name: str) -> str | None:
    """The deps tag built last on `base_name` (by its SBOM's time): what servers run before a republished base."""
    have = set(tag_list)
    candidates = [tag for tag in tag_list if f"{tag}.sbom" in have]
    with ThreadPoolExecutor(max_workers=4) as pool:  # one SBOM per deps image: read a few at a time
        documents = list(pool.map(lambda tag: fetch_sbom(registry, tags.DEPS_REPOSITORY, tag) or {}, candidates))
    newest: tuple[str, str] | None = None
    for tag, document in zip(candidates, documents, strict=True):
        metadata = document.get("metadata", {})
        names = {p.get("value") for p in metadata.get("component", {}).get("properties", [])
                 if p.get("name") == "production-control:base.name"}
        stamp = str(metadata.get("timestamp", ""))
        if base_name in names and (newest is None or stamp > newest[0]):
            newest = (stamp, tag)
    return newest[1] if newest else None


def followed(registry: Registry, tag_list: Sequence[str], content_hash: str, current: str | None, base_name: str) -> str | None:
    """The deps tag a new build of `content_hash` follows: its current version, else the one built last on the same base name."""
    return tags.deps_tag(current, content_hash) if current else previous_for_base(registry, tag_list, base_name)


# -- Debian packages never go back ------------------------------------------------------------------
def debian_downgrades(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Pure: `name old -> new` for each Debian package of both whose version is lower in `new`, by Debian's
    ordering (epochs, `~` before anything, revisions such as `+deb12u1` after the plain one)."""
    return [f"{name} {old[name]} -> {new[name]}" for name in sorted(set(old) & set(new)) if _lower(new[name], old[name])]


def _lower(new: str, old: str) -> bool:
    try:
        return Version(new) < Version(old)
    except ValueError:  # not a Debian version (an SBOM this toolkit did not make): nothing to order it by
        return False


def debian_against(registry: Registry, previous_tag: str, sbom_text: str) -> dict[str, Any]:
    """The Debian packages of the image whose SBOM is `sbom_text`, against `previous_tag`'s SBOM (none: no changes known)."""
    old_sbom = fetch_sbom(registry, tags.DEPS_REPOSITORY, previous_tag)
    old = sbom_packages(old_sbom)["deb"] if old_sbom else {}
    new = sbom_packages(json.loads(sbom_text))["deb"] if old_sbom else {}
    return {"compared_with": previous_tag, "debian_changes": package_changes(old, new),
            "debian_downgrades": debian_downgrades(old, new)}


def listed(items: Sequence[str], most: int = 5) -> str:
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


def refuse_older(comparison: Mapping[str, Any], cached: bool) -> None:
    """Pure: OlderDebianPackages, one line, when a deps image has older Debian packages than the one it follows.
    `cached`: the build took steps from the builder's cache (build_deps then builds again without it)."""
    downgrades = comparison.get("debian_downgrades") or []
    if not downgrades:
        return
    what = f"older Debian packages than {comparison['compared_with']} ({listed(downgrades)})"
    if cached:
        raise OlderDebianPackages(f"the deps image built from this builder's cache has {what}: its cache predates them")
    raise OlderDebianPackages(f"the deps image built here has {what}, without cache: the base image or Debian archive "
                              "this build used is older than that image's, so nothing was pushed; build where the archive "
                              "serves current packages (check the base's sources list and mirror)")


def debian_moved(comparison: Mapping[str, Any]) -> str | None:
    """Pure: the line saying which Debian packages changed since the image followed (None: none did)."""
    changes = comparison.get("debian_changes") or []
    if not changes:
        return None
    return (f"the OS layer changed since {comparison['compared_with']}: {len(changes)} Debian package(s), "
            f"{listed(changes)} (a server on the classic overlay2 store re-pulls every layer above it)")


def guard(registry: Registry, previous: str | None, sbom_text: str, cached: bool, report: Reporter) -> dict[str, Any]:
    """The Debian-package guard between a deps build and its push: never older Debian packages than `previous`
    (the deps tag it follows; None: none, nothing to compare), and a line saying which ones moved.
    Its comparison ({} without `previous`); OlderDebianPackages when refused (`cached`: see refuse_older)."""
    if previous is None:
        return {}
    comparison = debian_against(registry, previous, sbom_text)
    refuse_older(comparison, cached=cached)
    moved = debian_moved(comparison)
    if moved:
        report.step(moved)
    return comparison


def compare_with(registry: Registry, previous_tag: str, image: str, layout: Path, sbom_text: str) -> dict[str, Any]:
    """How the image in `layout` differs from `previous_tag`: same layers?, predicted pulls, package changes.

    A multi-platform build is compared platform by platform: identical only if every platform's image is.
    """
    identical, changed, predictions = True, 0, []
    for platform, descriptor in layout_manifests(layout):
        _, new, new_diff_ids = layout_image(layout, descriptor)
        old = registry.manifest(tags.DEPS_REPOSITORY, previous_tag, platform or AMD64)
        old_diff_ids = registry.config(tags.DEPS_REPOSITORY, old)["rootfs"]["diff_ids"]
        same = [b.digest for b in old.layers] == [b.digest for b in new.layers]
        identical = identical and same
        changed += sum(1 for a, b in zip(old.layers, new.layers, strict=False) if a.digest != b.digest) + abs(len(old.layers) - len(new.layers))
        if not same:
            predictions += [{**p, "platform": platform or AMD64}
                            for p in predict_refresh(old.config.digest, old_diff_ids, image, new, new_diff_ids)]
    return {
        **debian_against(registry, previous_tag, sbom_text),
        "identical": identical,
        "changed_layers": changed,
        "predicted_pull": [] if identical else predictions,
    }


# -- a deployed image's freshness (for `invoke status`) ------------------------------------------------
def deps_freshness(labels: Mapping[str, str], env: Sequence[str], registry: Registry,
                   now: datetime | None = None) -> dict[str, Any]:
    """The base digest, the deps image's age and whether a newer deps image (a refresh) exists,
    for an app image with `labels` and `env` (as `docker image inspect` gives them on a host).

    The age comes from the build time in the deps image's SBOM (the image config's own
    time is the epoch: builds are reproducible).
    """
    deps_tag = next((e.split("=", 1)[1] for e in env if e.startswith("PRODUCTION_CONTROL_DEPS_TAG=")), None)
    result: dict[str, Any] = {
        "deps_tag": deps_tag, "base_name": labels.get(BASE_NAME_LABEL), "base_digest": labels.get(BASE_DIGEST_LABEL),
        "built_at": None, "age_days": None, "newer": None,
    }
    try:
        parsed = tags.parse_deps_tag(deps_tag or "")
    except DeliveryError:
        return result  # an image from before deps tags, or a local build
    document = fetch_sbom(registry, tags.DEPS_REPOSITORY, deps_tag or "")
    stamp = (document or {}).get("metadata", {}).get("timestamp")
    if stamp:
        built = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        result["built_at"] = built.isoformat()
        result["age_days"] = round(((now or datetime.now(UTC)) - built).total_seconds() / 86400, 1)
    newest = deps_versions(registry.tags(tags.DEPS_REPOSITORY), parsed.content_hash)
    if newest and parse_semver(newest[-1]) > parse_semver(parsed.version):
        result["newer"] = tags.deps_tag(newest[-1], parsed.content_hash)
    return result


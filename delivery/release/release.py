"""An app release in the registry (one image, or an index of one image per platform), and what pulling it
would download on a host, predicted before anything is pulled or stopped (delivery/release/pullreport.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from python_on_whales import DockerClient

from delivery.config.hosts import Host
from delivery.config.platforms import engine_platform, lacking
from delivery.config.settings import DeployConfig
from delivery.docker.engine import EngineInfo, docker_errors, image_layers
from delivery.errors import DeliveryError
from delivery.images import tags
from delivery.registry.client import Manifest, Registry
from delivery.release.pullreport import PullPlan, host_layers, plan_pull


@dataclass(frozen=True)
class Variant:
    """One platform's image of a release: what a host of that platform pulls and runs."""

    platform: str  # linux/amd64
    manifest: Manifest  # its index_digest is set when the tag names an index
    diff_ids: tuple[str, ...]


@dataclass(frozen=True)
class Release:
    """An app release in the registry: one image, or one index of an image per platform."""

    tag: str
    image: str
    digest: str  # what the tag names: the index's digest for a multi-platform release, else the image manifest's
    variants: tuple[Variant, ...]

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(v.platform for v in self.variants)

    def variant(self, platform: str, host: str) -> Variant:
        """The image a host of `platform` pulls; one line, before anything changes, when the release has none."""
        for variant in self.variants:
            if variant.platform == platform:
                return variant
        raise lacking("the image", platform, self.platforms, f" for host {host}, which runs {platform}", self.image)


def resolve_release(registry: Registry, config: DeployConfig, version: str) -> Release:
    """The release named by an app tag (1.0.0-abcdef123456) or a bare version (1.0.0, if unambiguous),
    with the image of each platform it offers (an index's entries; a single image's own platform)."""
    tag = version
    if "-" not in version:
        matches = [t for t in registry.tags(tags.APP_REPOSITORY) if t.startswith(f"{version}-") and "-dirty-" not in t]
        if not matches:
            raise DeliveryError(f"unknown version {version}: no {tags.APP_REPOSITORY}:{version}-* in {config.registry} (see `invoke status`)")
        if len(matches) > 1:
            raise DeliveryError(f"version {version} is ambiguous ({', '.join(matches)}): pass the full tag with --version")
        tag = matches[0]
    else:
        tags.parse_app_tag(tag)
    offered: list[str | None] = list(registry.index_platforms(tags.APP_REPOSITORY, tag) or []) or [None]
    variants = []
    for platform in offered:
        manifest = registry.manifest(tags.APP_REPOSITORY, tag, *([platform] if platform else []))
        config_doc = registry.config(tags.APP_REPOSITORY, manifest)
        own = engine_platform(config_doc.get("os"), config_doc.get("architecture"))
        variants.append(Variant(platform or own, manifest, tuple(config_doc.get("rootfs", {}).get("diff_ids", []))))
    digest = variants[0].manifest.index_digest or variants[0].manifest.digest
    return Release(tag, tags.image_ref(config.registry, tags.APP_REPOSITORY, tag), digest, tuple(variants))


class Engine(Protocol):
    """A host's engine, as far as predicting a pull goes (delivery/hosts/target.py, Target, is one)."""

    @property
    def host(self) -> Host: ...

    @property
    def docker(self) -> DockerClient: ...

    @property
    def info(self) -> EngineInfo: ...


def predict_pull(target: Engine, variant: Variant, image: str) -> PullPlan:
    """What `variant` (the host's platform's image of a release) would download on this host, before anything is pulled or stopped."""
    with docker_errors(f"listing images on {target.host.label}"):
        layers = host_layers(target.info.image_store, image_layers(target.docker))
    return plan_pull(image, variant.manifest, variant.diff_ids, layers)

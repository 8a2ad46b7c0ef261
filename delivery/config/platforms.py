"""Platforms: which ones the images are built for, and which one each host runs.

The images are built for `deploy.platforms` (default: linux/amd64 and linux/arm64) and
pushed as one index per tag. A host pulls the entry of its own platform, which its
engine reports (`docker info`: OSType and Architecture, the kernel's name for the CPU).
Everything here is pure: parsing, naming a host's platform, checking a builder can run
a platform, picking an index's entry.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from delivery.errors import DeliveryError

AMD64, ARM64 = "linux/amd64", "linux/arm64"
SUPPORTED = (AMD64, ARM64)
DEFAULT = SUPPORTED
# The names an engine (uname -m, Go's GOARCH) or a person may use for them.
ALIASES = {
    "linux/amd64": AMD64, "linux/x86_64": AMD64, "linux/x86-64": AMD64, "linux/amd64/v1": AMD64,
    "linux/arm64": ARM64, "linux/aarch64": ARM64, "linux/arm64/v8": ARM64,
}
ENGINE_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                        "armv7l": "arm/v7", "armv6l": "arm/v6", "i686": "386", "i386": "386",
                        "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
EMULATION_HINT = ("install QEMU user emulation (`sudo scripts/testbed install`, or `apt-get install qemu-user-static "
                  "binfmt-support`; on GitHub Actions docker/setup-qemu-action)")


def parse_platform(value: str) -> str:
    """`linux/arm64` from `linux/arm64`, `linux/aarch64`, `arm64` ...; one line naming the supported ones otherwise."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if text and "/" not in text:
        text = f"linux/{text}"
    if text not in ALIASES:
        raise DeliveryError(f"unknown platform {value!r} in deploy.platforms: use {' and/or '.join(SUPPORTED)}, "
                            f"comma-separated (default: {','.join(DEFAULT)})")
    return ALIASES[text]


def parse_platforms(value: Any) -> tuple[str, ...]:
    """deploy.platforms (a comma-separated string, as INVOKE_DEPLOY_PLATFORMS gives it, or a list), validated, in order."""
    if isinstance(value, str):
        items = [item for item in (part.strip() for part in value.split(",")) if item]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = []
    if not items:
        raise DeliveryError(f"deploy.platforms is empty: list at least one of {', '.join(SUPPORTED)}")
    platforms: list[str] = []
    for item in items:
        platform = parse_platform(item)
        if platform in platforms:
            raise DeliveryError(f"deploy.platforms lists {platform} twice: list each platform once")
        platforms.append(platform)
    return tuple(platforms)


def engine_platform(os_type: str | None, architecture: str | None) -> str:
    """The platform a host's engine pulls for, from `docker info` (OSType linux, Architecture x86_64 -> linux/amd64)."""
    arch = ENGINE_ARCHITECTURES.get((architecture or "").lower(), (architecture or "unknown").lower())
    return f"{(os_type or 'linux').lower()}/{arch}"


def platform_of(descriptor: Mapping[str, Any]) -> str:
    """`os/architecture[/variant]` of an index entry's platform; "" when it names none (attestations, SBOMs)."""
    p = descriptor.get("platform") or {}
    if not p.get("os") or not p.get("architecture"):
        return ""
    name = f"{p['os']}/{p['architecture']}"
    # arm64's only variant is v8: `linux/arm64/v8` is linux/arm64
    return name + (f"/{p['variant']}" if p.get("variant") and not (p["architecture"] == "arm64" and p["variant"] == "v8") else "")


def index_platforms(index: Mapping[str, Any]) -> list[str]:
    """The platforms an index offers, in its order (entries without a platform, or `unknown/unknown`, left out)."""
    return [name for name in (platform_of(entry) for entry in index.get("manifests", [])) if name and "unknown" not in name]


def pick(index: Mapping[str, Any], platform: str, what: str = "the image") -> dict[str, Any]:
    """The entry of `platform` in an index; one line naming what it has otherwise."""
    for entry in index.get("manifests", []):
        if platform_of(entry) == platform:
            return dict(entry)
    raise lacking(what, platform, index_platforms(index))


def lacking(what: str, platform: str, offered: Iterable[str], where: str = "", image: str = "") -> DeliveryError:
    """The one line for an image without `platform`: what it has, and how to get the platform built."""
    return DeliveryError(
        f"{what} has no {platform} variant{where} ({image or 'it'} has {', '.join(offered) or 'none'}): build it for {platform} "
        "(add it to deploy.platforms, then `invoke build-deps` and `invoke build-app`); nothing was changed"
    )


def missing_from_builder(wanted: Iterable[str], builder_platforms: Iterable[str]) -> list[str]:
    """The wanted platforms the builder cannot build (it lists what it runs natively or through QEMU)."""
    have = set()
    for name in builder_platforms:
        try:
            have.add(parse_platform(name))
        except DeliveryError:
            continue  # platforms we do not build for (linux/riscv64, linux/amd64/v2 ...)
    return [platform for platform in wanted if platform not in have]

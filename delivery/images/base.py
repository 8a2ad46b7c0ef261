"""The base image of the deps image, tracked by digest rather than by name.

`resolve_base` turns the configured base (a tag such as python:3.12.12-slim-bookworm) into
the digest its registry serves for it now (the multi-platform index when there is one), asked
with `docker buildx imagetools inspect`, so Docker Hub tokens and `docker login` credentials
work as for a pull. The deps content hash covers that digest, and the build gets
`name:tag@sha256:...`: a republished base changes the deps tag, and what is built is what the
hash names.

A base is always read from a registry, never from the builder engine's own images: an offline
base is pushed to a registry first (the test bed pushes its own to localhost:5000). BuildKit
(0.13, in Engine 26) cannot be trusted to find a local image by digest: it looks for the
manifest blob in its content store only when the blob carries a
`containerd.io/distribution.source.<registry>=<repository>` label, which `docker import` and
`docker load` do not write and which only a build FROM the plain tag adds. Without it BuildKit
asks the image's registry (docker.io for a bare name), so the same build failed on a fresh
engine and passed after other builds (docs/images.md, "The base image by digest").
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.config.references import split_image_ref
from delivery.docker.engine import last_line
from delivery.errors import DeliveryError

# Labels of the deps image (inherited by the app image built FROM it): what it was built on.
BASE_NAME_LABEL = "production-control.base.name"
BASE_DIGEST_LABEL = "production-control.base.digest"
# The Debian package set of the build, one `name=version` a line, in the deps image.
DEBIAN_PACKAGES_FILE = "/usr/share/production-control/debian-packages.txt"


@dataclass(frozen=True)
class BaseImage:
    name: str  # as configured, without a digest: python:3.12.12-slim-bookworm
    digest: str  # sha256:<hex>: the registry's manifest (or index) digest

    @property
    def pinned(self) -> str:
        """`name@digest`: what the deps content hash covers."""
        return f"{self.name}@{self.digest}"

    def labels(self) -> dict[str, str]:
        return {BASE_NAME_LABEL: self.name, BASE_DIGEST_LABEL: self.digest}


def strip_digest(name: str) -> tuple[str, str | None]:
    """('repo:tag', 'sha256:...') from 'repo:tag@sha256:...'; the digest is None when absent."""
    split_image_ref(name)  # validates
    plain, at, digest = name.partition("@")
    return plain, (digest if at else None)


def resolve_base(docker: DockerClient, name: str) -> BaseImage:
    """The configured base and the digest its registry serves for it now (see the module doc)."""
    plain, digest = strip_digest(name)
    if digest:  # pinned in the configuration already: nothing to ask
        return BaseImage(plain, digest)
    return BaseImage(plain, registry_digest(docker, plain))


def registry_digest(docker: DockerClient, name: str) -> str:
    """The digest the registry serves for `name` now (one line naming the registry when it does not answer)."""
    try:
        output = str(run(docker.docker_cmd + ["buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", name]))
    except DockerException as exc:
        host = split_image_ref(name).registry or "docker.io"
        raise DeliveryError(
            f"cannot resolve the base image {name} at its registry {host} ({last_line(exc)}): "
            "check the network or deploy.python_image (an offline base: push it to a registry first); "
            "nothing was built or pushed"
        ) from None
    try:
        digest = json.loads(output or "{}")["digest"]
    except (ValueError, KeyError, TypeError):
        raise DeliveryError(f"the registry of {name} answered no manifest digest: check deploy.python_image") from None
    return str(digest)

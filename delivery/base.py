"""The base image of the deps image, tracked by digest rather than by name.

`resolve_base` turns the configured base (a tag such as python:3.12.12-slim-bookworm)
into the digest it points at now:
- `python_image_source: registry` (the default): the digest the registry serves for the tag
  (the multi-platform index when there is one), asked with `docker buildx imagetools inspect`,
  so Docker Hub tokens and `docker login` credentials work as for a pull;
- `python_image_source: local`: the image ID in the builder engine, for an offline base that
  was never pushed (the test bed's production-control/python-base:bookworm).

The deps content hash covers that digest, and the build gets `name:tag@sha256:...`: a
republished base changes the deps tag, and what is built is what the hash names. On the
containerd image store BuildKit (docker driver) resolves a local image by that reference:
the image ID there is the digest of its manifest. The classic store's image ID is the
digest of the image config, which BuildKit cannot look up, so a local base on a classic
builder is built by its tag (the hash still covers its ID).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.engine import image_store, last_line
from delivery.errors import DeliveryError
from delivery.tags import split_image_ref

SOURCES = ("registry", "local")

# Labels of the deps image (inherited by the app image built FROM it): what it was built on.
BASE_NAME_LABEL = "production-control.base.name"
BASE_DIGEST_LABEL = "production-control.base.digest"
# The Debian package set of the build, one `name=version` a line, in the deps image.
DEBIAN_PACKAGES_FILE = "/usr/share/production-control/debian-packages.txt"


@dataclass(frozen=True)
class BaseImage:
    name: str  # as configured, without a digest: python:3.12.12-slim-bookworm
    digest: str  # sha256:<hex>: registry manifest (or index) digest, or local image ID
    source: str  # "registry" or "local"
    by_digest: bool = True  # False: only on a classic-store builder, for a local base

    @property
    def pinned(self) -> str:
        """`name@digest`: what the deps content hash covers."""
        return f"{self.name}@{self.digest}"

    @property
    def build_ref(self) -> str:
        """What the build's FROM gets (PYTHON_IMAGE)."""
        return self.pinned if self.by_digest else self.name

    def labels(self) -> dict[str, str]:
        return {BASE_NAME_LABEL: self.name, BASE_DIGEST_LABEL: self.digest}


def strip_digest(name: str) -> tuple[str, str | None]:
    """('repo:tag', 'sha256:...') from 'repo:tag@sha256:...'; the digest is None when absent."""
    split_image_ref(name)  # validates
    plain, at, digest = name.partition("@")
    return plain, (digest if at else None)


def resolve_base(docker: DockerClient, name: str, source: str) -> BaseImage:
    """The configured base and the digest it points at now (see the module doc)."""
    if source not in SOURCES:
        raise DeliveryError(f"invalid deploy.python_image_source {source!r}: use registry or local")
    plain, digest = strip_digest(name)
    if digest:  # pinned in the configuration already: nothing to ask
        return BaseImage(plain, digest, source)
    if source == "local":
        return _local(docker, plain)
    return BaseImage(plain, registry_digest(docker, plain), "registry")


def _local(docker: DockerClient, name: str) -> BaseImage:
    try:
        image = docker.image.inspect(name)
    except DockerException:
        raise DeliveryError(
            f"the base image {name} is not in the builder engine: load or build it (the test bed's: "
            "`scripts/testbed up`), or set deploy.python_image_source to registry"
        ) from None
    containerd = image_store(docker.system.info().driver_status) == "containerd"
    return BaseImage(name, str(image.id), "local", by_digest=containerd)


def registry_digest(docker: DockerClient, name: str) -> str:
    """The digest the registry serves for `name` now (one line naming the registry when it does not answer)."""
    try:
        output = run(docker.docker_cmd + ["buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", name])
    except DockerException as exc:
        host = split_image_ref(name).registry or "docker.io"
        raise DeliveryError(
            f"cannot resolve the base image {name} at its registry {host} ({last_line(exc)}): "
            "check the network or deploy.python_image (an offline base: deploy.python_image_source=local); "
            "nothing was built or pushed"
        ) from None
    try:
        digest = json.loads(output or "{}")["digest"]
    except (ValueError, KeyError, TypeError):
        raise DeliveryError(f"the registry of {name} answered no manifest digest: check deploy.python_image") from None
    return str(digest)

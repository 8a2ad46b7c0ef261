"""Image references: the distribution/reference grammar, and a reference split into its parts (pure).

The lowest layer that reads image names: the settings validate deploy.python_image and
deploy.proxy_image with it, and delivery/images/tags.py builds and reads the images' names on it.
"""

import re
from typing import NamedTuple

from delivery.errors import DeliveryError

# Docker's tag grammar (distribution/reference).
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)

# distribution/reference grammar, simplified to what a registry accepts.
DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?",
    re.ASCII,
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}", re.ASCII)
_REF_FORM = "use [registry[:port]/]repository[:tag][@sha256:digest], e.g. localhost:5000/production-control:1.0.0-abcdef123456"


class ImageRef(NamedTuple):
    """The parts of an image reference; registry is "" for Docker Hub style names."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None


def looks_like_registry(component: str) -> bool:
    """Docker's rule: a first path component with a dot or a port, or `localhost`, is a registry host."""
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")


def split_image_ref(ref: str) -> ImageRef:
    """Split `[host[:port]/]repo[:tag][@algo:hex]` into (registry, repository, tag, digest)."""
    if not isinstance(ref, str):
        raise DeliveryError(f"invalid image reference {ref!r}: {_REF_FORM}")
    name, at, digest = ref.partition("@")
    if at and not DIGEST.fullmatch(digest):
        raise DeliveryError(f"invalid image reference {ref!r}: {_REF_FORM}")
    tag: str | None = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        if not TAG_PATTERN.fullmatch(tag):
            raise DeliveryError(f"invalid image reference {ref!r}: {_REF_FORM}")
    registry = ""
    first, slash, rest = name.partition("/")
    if slash and looks_like_registry(first):
        registry, name = first, rest
        if not DOMAIN.fullmatch(registry):
            raise DeliveryError(f"invalid image reference {ref!r}: {_REF_FORM}")
    if not REPOSITORY.fullmatch(name):
        raise DeliveryError(f"invalid image reference {ref!r}: {_REF_FORM}")
    return ImageRef(registry=registry, repository=name, tag=tag, digest=digest if at else None)

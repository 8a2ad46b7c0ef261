"""Image tags and references: what the deps and app images are called, derived from their inputs.

The deps tag (`deps-1.0.0-abcdef123456`) names the deps version and a hash of everything
that goes into the deps image, so it changes exactly when that image must be rebuilt.
The app tag (`1.0.0-0123456789ab`, or `...-dirty-1a2b3c4d` for an uncommitted tree)
names the app version and the commit.
"""

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from delivery.config.references import DIGEST, DOMAIN, REPOSITORY, TAG_PATTERN, ImageRef, looks_like_registry, split_image_ref
from delivery.config.versioning import parse_semver
from delivery.errors import DeliveryError

# The reference grammar (TAG_PATTERN, ImageRef, split_image_ref) lives in delivery/config/references.py: the settings
# validate with it; this module builds the project's own names on it.

DEPS_REPOSITORY = "production-control-deps"
APP_REPOSITORY = "production-control"

DEPS_STAGE = "deps"
RUNTIME_STAGE = "runtime"

HASH_LENGTH = 12  # hex chars of the deps content hash
COMMIT_LENGTH = 12  # hex chars of the commit in an app tag
DIRTY_LENGTH = 8  # hex chars of the dirty-tree fingerprint in an app tag

_SEMVER_TEXT = r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
_DEPS_TAG = re.compile(rf"deps-(?P<version>{_SEMVER_TEXT})-(?P<hash>[0-9a-f]{{{HASH_LENGTH}}})", re.ASCII)
_APP_TAG = re.compile(
    rf"(?P<version>{_SEMVER_TEXT})-(?P<commit>[0-9a-f]{{{COMMIT_LENGTH}}})"
    rf"(?:-dirty-(?P<dirty>[0-9a-f]{{{DIRTY_LENGTH}}}))?",
    re.ASCII,
)
_HEX = re.compile(r"[0-9a-fA-F]+", re.ASCII)

# Dockerfile: `FROM [--flag=value ...] image [AS name]`; instructions are case-insensitive.
_FROM = re.compile(r"FROM\s+(?:--\S+\s+)*\S+(?:\s+AS\s+(?P<name>\S+))?\s*", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class DepsTag:
    """A parsed deps tag: the deps version and the content hash of its inputs."""

    version: str
    content_hash: str


@dataclass(frozen=True)
class AppTag:
    """A parsed app tag: the app version, the 12-char commit and the dirty fingerprint (None if clean)."""

    version: str
    commit: str
    dirty: str | None


# --- Dockerfile -----------------------------------------------------------------------------


def _instructions(text: str) -> Iterator[tuple[int, str]]:
    """Yield (offset of its first line, logical text) for each instruction, joining `\\` continuations.

    Comment lines are skipped, also inside continuations. Heredocs are not understood.
    """
    offset = 0
    start: int | None = None
    parts: list[str] = []
    for raw in text.split("\n"):
        line_offset = offset
        offset += len(raw) + 1
        line = raw.rstrip("\r")
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if start is None:
            start = line_offset
        if stripped.endswith("\\"):
            parts.append(stripped[:-1])
            continue
        parts.append(stripped)
        yield start, " ".join(parts)
        start, parts = None, []
    if start is not None:
        yield start, " ".join(parts)


def _stages(text: str) -> list[tuple[int, str | None]]:
    """(offset of the FROM line, lower-cased stage name or None) for each stage, in order."""
    stages = []
    for offset, instruction in _instructions(text):
        match = _FROM.fullmatch(instruction)
        if match:
            name = match.group("name")
            stages.append((offset, name.lower() if name else None))
    return stages


def dockerfile_arg_default(text: str, name: str) -> str | None:
    """The default value of a global `ARG name=value` (before the first FROM), or None if unset."""
    for _, instruction in _instructions(text):
        if _FROM.fullmatch(instruction):
            break
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() != "ARG":
            continue
        for token in rest.split():
            key, equals, value = token.partition("=")
            if key == name:
                return (value.strip("\"'") or None) if equals else None
    return None


def deps_dockerfile_part(dockerfile_text: str) -> str:
    """The Dockerfile text that defines the deps image: everything before the runtime stage's FROM."""
    stages = _stages(dockerfile_text)
    names = [name for _, name in stages]
    for required in (DEPS_STAGE, RUNTIME_STAGE):
        if required not in names:
            raise DeliveryError(
                f"Dockerfile has no `{required}` target: add a stage `FROM ... AS {required}`"
            )
    runtime_index = names.index(RUNTIME_STAGE)
    if names.index(DEPS_STAGE) > runtime_index:
        raise DeliveryError("Dockerfile defines `runtime` before `deps`: move the runtime stage after deps")
    return dockerfile_text[: stages[runtime_index][0]]


def deps_content_hash(lock_bytes: bytes, dockerfile_text: str, python_image: str,
                      platforms: Sequence[str] = ("linux/amd64",)) -> str:
    """First 12 hex chars of sha256 over the deps part of the Dockerfile, the lock, the base image (name@digest)
    and the platforms built (so adding arm64 builds a new deps index rather than finding the amd64 image).

    Each field is length-prefixed, so no two different inputs encode to the same bytes. linux/amd64
    alone adds no field: the tags of amd64-only images stay those of the images built before platforms.
    """
    if not python_image:
        raise DeliveryError("the base image is empty: set deploy.python_image or ARG PYTHON_IMAGE in the Dockerfile")
    fields = (
        b"production-control-deps/1",
        deps_dockerfile_part(dockerfile_text).encode("utf-8"),
        bytes(lock_bytes),
        python_image.encode("utf-8"),
    ) + ((",".join(platforms).encode("utf-8"),) if tuple(platforms) != ("linux/amd64",) else ())
    digest = hashlib.sha256()
    for field in fields:
        digest.update(len(field).to_bytes(8, "big"))
        digest.update(field)
    return digest.hexdigest()[:HASH_LENGTH]


# --- tags -------------------------------------------------------------------------------------


def _check_tag(tag: str) -> str:
    if not TAG_PATTERN.fullmatch(tag):
        raise DeliveryError(f"tag {tag!r} is not a valid Docker tag (at most 128 of A-Z a-z 0-9 _ . -): use a shorter version")
    return tag


def _hex_prefix(value: str, length: int, what: str) -> str:
    if not isinstance(value, str) or len(value) < length or not _HEX.fullmatch(value):
        raise DeliveryError(f"invalid {what} {value!r}: expected at least {length} hex characters")
    return value[:length].lower()


def deps_tag(deps_version: str, content_hash: str) -> str:
    """The deps image tag, e.g. `deps-1.0.0-abcdef123456`."""
    parse_semver(deps_version)
    return _check_tag(f"deps-{deps_version}-{_hex_prefix(content_hash, HASH_LENGTH, 'content hash')}")


def parse_deps_tag(tag: str) -> DepsTag:
    """Split a deps tag into its version and content hash."""
    match = _DEPS_TAG.fullmatch(tag) if isinstance(tag, str) else None
    if match is None:
        raise DeliveryError(f"invalid deps tag {tag!r}: expected deps-X.Y.Z-<12 hex chars>, e.g. deps-1.0.0-abcdef123456")
    return DepsTag(version=match.group("version"), content_hash=match.group("hash"))


def app_tag(app_version: str, commit: str, dirty_fingerprint: str | None = None) -> str:
    """The app image tag, `1.0.0-<commit12>`, or `1.0.0-<commit12>-dirty-<fingerprint8>` for a dirty tree."""
    parse_semver(app_version)
    tag = f"{app_version}-{_hex_prefix(commit, COMMIT_LENGTH, 'commit')}"
    if dirty_fingerprint is not None:
        tag += f"-dirty-{_hex_prefix(dirty_fingerprint, DIRTY_LENGTH, 'dirty fingerprint')}"
    return _check_tag(tag)


def parse_app_tag(tag: str) -> AppTag:
    """Split an app tag into version, commit and dirty fingerprint (None for a clean tree)."""
    match = _APP_TAG.fullmatch(tag) if isinstance(tag, str) else None
    if match is None:
        raise DeliveryError(
            f"invalid app tag {tag!r}: expected X.Y.Z-<12 hex commit>[-dirty-<8 hex>], e.g. 1.0.0-0123456789ab"
        )
    return AppTag(version=match.group("version"), commit=match.group("commit"), dirty=match.group("dirty"))


# --- image references -------------------------------------------------------------------------


def image_ref(registry: str, repository: str, tag: str) -> str:
    """`registry/repository:tag` (just `repository:tag` when registry is empty); registry may hold a namespace."""
    domain, _, namespace = registry.partition("/")
    if registry and (not DOMAIN.fullmatch(domain) or (namespace and not REPOSITORY.fullmatch(namespace))):
        raise DeliveryError(f"invalid registry {registry!r}: use host[:port][/namespace], e.g. localhost:5000 or ghcr.io/acme")
    if not REPOSITORY.fullmatch(repository):
        raise DeliveryError(f"invalid repository {repository!r}: use lower-case names like {APP_REPOSITORY}")
    if not registry and looks_like_registry(repository.partition("/")[0]) and "/" in repository:
        raise DeliveryError(f"repository {repository!r} would be read as a registry host: give the registry explicitly")
    _check_tag(tag)
    return f"{registry}/{repository}:{tag}" if registry else f"{repository}:{tag}"


# --- pinned references: a tag and the digest it names -------------------------------------------------

_DOCKER_HUB_NAMES = ("", "docker.io", "index.docker.io", "registry-1.docker.io")


def pinned(tag: str, digest: str | None) -> str:
    """`tag@digest` (what a deploy's env file names: the engine then runs exactly that digest), or `tag` alone."""
    if digest is not None and not DIGEST.fullmatch(digest):
        raise DeliveryError(f"invalid digest {digest!r}: expected sha256:<64 hex characters>")
    return f"{tag}@{digest}" if digest else tag


def without_digest(value: str) -> str:
    """A tag or image reference without its `@sha256:...` part: `1.0.0-abc@sha256:...` -> `1.0.0-abc`."""
    return value.partition("@")[0]


def _same_repository(a: ImageRef, b: ImageRef) -> bool:
    def host(registry: str) -> str:
        return "docker.io" if registry in _DOCKER_HUB_NAMES else registry

    return (host(a.registry), a.repository) == (host(b.registry), b.repository)


def recorded_digests(image: str, repo_digests: Iterable[str]) -> list[str]:
    """The digests an engine recorded for `image`'s repository, in order, from the image's RepoDigests
    (`name@sha256:...`; Docker Hub's are written without `docker.io/`). Others' and unreadable ones are skipped."""
    wanted = split_image_ref(image)
    found: list[str] = []
    for ref in repo_digests:
        try:
            parts = split_image_ref(ref)
        except DeliveryError:
            continue
        if parts.digest and _same_repository(parts, wanted) and parts.digest not in found:
            found.append(parts.digest)
    return found

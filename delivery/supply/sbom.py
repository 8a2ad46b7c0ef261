"""The deps image's SBOM: CycloneDX 1.6 JSON, pushed beside the image in the registry.

It lists the Python packages of requirements.lock (name, locked version, the lock's
sha256 hashes, pkg:pypi purls) and the Debian packages of the image's dpkg status
(read from the built image's layers, pkg:deb purls), and names the base image by
digest. The document is built and validated against the CycloneDX schema with
cyclonedx-python-lib, the CycloneDX project's own Python library.

The SBOM is pushed as an OCI artifact (artifactType application/vnd.cyclonedx+json,
`subject` = the image) under the tag `<deps tag>.sbom` of the deps repository.
Any failure here fails the build before the image is pushed: no image ships without its SBOM.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from delivery.errors import DeliveryError
from delivery.images.base import BaseImage
from delivery.images.build import Built
from delivery.images.tags import DEPS_REPOSITORY
from delivery.registry.client import Registry, blob_path, layout_manifests
from delivery.reporting import Reporter

SBOM_MEDIA_TYPE = "application/vnd.cyclonedx+json"
EMPTY_CONFIG = {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}
DPKG_STATUS = "var/lib/dpkg/status"
OS_RELEASE = ("usr/lib/os-release", "etc/os-release")


@dataclass(frozen=True)
class PythonPackage:
    name: str
    version: str
    hashes: tuple[str, ...]  # sha256 hex


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str
    architecture: str
    source: str | None


def sbom_tag(deps_tag: str) -> str:
    return f"{deps_tag}.sbom"


# -- inputs (pure) ------------------------------------------------------------------------------
def locked_packages(lock_text: str) -> list[PythonPackage]:
    """The `name==version` entries of a hashed lock, with their sha256 hashes."""
    packages: list[PythonPackage] = []
    name: str | None = None
    version: str | None = None
    hashes: list[str] = []

    def flush() -> None:
        if name:
            packages.append(PythonPackage(name, version or "", tuple(hashes)))

    for raw in lock_text.splitlines():
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if not line:
            continue
        if not raw[:1].isspace():
            flush()
            requirement = line.split(";", 1)[0].split()[0]
            if "==" not in requirement:
                raise DeliveryError(f"requirements.lock entry {requirement!r} is not pinned with ==: run `invoke lock`")
            name, version = (part.strip() for part in requirement.split("==", 1))
            name = name.split("[", 1)[0]
            hashes = []
        for token in line.split():
            if token.startswith("--hash=sha256:"):
                hashes.append(token.split(":", 1)[1])
    flush()
    return packages


def parse_dpkg_status(text: str) -> list[DebianPackage]:
    """The installed packages of a dpkg status file (stanzas whose Status ends in `installed`)."""
    packages = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1].isspace() or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if "Package" in fields and fields.get("Status", "").endswith(" installed"):
            source = fields.get("Source", "").split(" ", 1)[0] or None
            packages.append(DebianPackage(fields["Package"], fields.get("Version", ""), fields.get("Architecture", ""), source))
    return sorted(packages, key=lambda p: (p.name, p.architecture))


def parse_os_release(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            values[key.strip()] = value.strip().strip('"')
    return values


def layout_files(layout: Path, wanted: Iterable[str], manifest_digest: str | None = None) -> dict[str, bytes]:
    """The topmost version of each `wanted` path (no leading /) in an image of an OCI layout
    (`manifest_digest`; default: its one image, or the first platform's of its index)."""
    digest = manifest_digest or layout_manifests(layout)[0][1]["digest"]
    manifest = json.loads(blob_path(layout, digest).read_bytes())
    wanted = set(wanted)
    found: dict[str, bytes] = {}
    for layer in manifest["layers"]:  # bottom to top: a later layer's copy wins
        opener = gzip.open if "gzip" in layer["mediaType"] else open
        with opener(blob_path(layout, layer["digest"]), "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                path = member.name.lstrip("./")
                if path in wanted and member.isfile():
                    found[path] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return found


# -- the document ---------------------------------------------------------------------------------
def make_sbom(image: str, digest: str, base: BaseImage, python: list[PythonPackage], debian: list[DebianPackage],
              os_release: Mapping[str, str], now: datetime | None = None) -> str:
    """CycloneDX 1.6 JSON for the deps image, validated against the schema."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from packageurl import PackageURL

    registry_repo, _, tag = image.rpartition(":")
    distro = f"{os_release.get('ID', 'debian')}-{os_release.get('VERSION_ID', 'unknown')}"
    bom = Bom()
    bom.metadata.timestamp = now or datetime.now(UTC)
    bom.metadata.component = Component(
        name=registry_repo.rsplit("/", 1)[-1], version=tag, type=ComponentType.CONTAINER, bom_ref="image",
        purl=PackageURL("oci", None, registry_repo.rsplit("/", 1)[-1], digest,
                        {"repository_url": registry_repo, "tag": tag}),
        properties=[Property(name="production-control:base.name", value=base.name),
                    Property(name="production-control:base.digest", value=base.digest)],
    )
    bom.components.add(Component(
        name=base.name.rpartition(":")[0] if ":" in base.name.rsplit("/", 1)[-1] else base.name,
        version=base.digest, type=ComponentType.CONTAINER, bom_ref="base-image",
        description="the base image, by digest", properties=[Property(name="production-control:role", value="base")],
    ))
    for package in python:
        bom.components.add(Component(
            name=package.name, version=package.version, bom_ref=f"pypi:{package.name}@{package.version}",
            purl=PackageURL("pypi", None, package.name.lower(), package.version),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=h) for h in package.hashes],
            properties=[Property(name="production-control:source", value="requirements.lock")],
        ))
    for deb in debian:
        qualifiers = {"arch": deb.architecture, "distro": distro}
        bom.components.add(Component(
            name=deb.name, version=deb.version, type=ComponentType.LIBRARY,
            bom_ref=f"deb:{deb.name}:{deb.architecture}@{deb.version}",
            purl=PackageURL("deb", os_release.get("ID", "debian"), deb.name, deb.version, qualifiers),
            properties=[Property(name="production-control:source", value="dpkg status")]
            + ([Property(name="production-control:deb.source", value=deb.source)] if deb.source else []),
        ))
    bom.register_dependency(bom.metadata.component, list(bom.components))  # the image contains every component
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if errors:
        raise DeliveryError(f"the SBOM does not validate against CycloneDX 1.6 ({errors}): nothing was pushed")
    return text


def sbom_for_layout(layout: Path, image: str, base: BaseImage, lock_text: str, now: datetime | None = None) -> str:
    """The SBOM of the image built into `layout` (any failure: one DeliveryError line).

    A multi-platform build's SBOM describes its index: the Debian packages of every platform's
    image (their purls carry each one's architecture), the locked Python packages once.
    """
    try:
        debian: set[DebianPackage] = set()
        os_release: dict[str, str] = {}
        for _, descriptor in layout_manifests(layout):
            files = layout_files(layout, [DPKG_STATUS, *OS_RELEASE], descriptor["digest"])
            if DPKG_STATUS not in files:
                raise DeliveryError(f"the image has no /{DPKG_STATUS}: the SBOM cannot list its Debian packages")
            os_release = os_release or parse_os_release(next((files[p] for p in OS_RELEASE if p in files), b"").decode())
            debian.update(parse_dpkg_status(files[DPKG_STATUS].decode()))
        index = json.loads((layout / "index.json").read_text())
        return make_sbom(image, index["manifests"][0]["digest"], base, locked_packages(lock_text),
                         sorted(debian, key=lambda p: (p.name, p.architecture)), os_release, now)
    except DeliveryError:
        raise
    except Exception as exc:  # the SBOM tool failing, whatever the reason, stops the release
        raise DeliveryError(f"making the SBOM failed ({type(exc).__name__}: {exc}): nothing was pushed") from exc


# -- the step between a deps build and its push ----------------------------------------------------
def make_for(built: Built, base: BaseImage, lock_text: str, report: Reporter) -> str:
    """The SBOM of a built deps image, made before its push (a failure fails the build: no image ships without one)."""
    report.step("making the SBOM (CycloneDX: the locked Python packages, the image's Debian packages)")
    if built.layout is None:
        raise DeliveryError(f"{built.image} was built without an OCI layout: the SBOM cannot read it (a bug in the toolkit)")
    return sbom_for_layout(built.layout, built.image, base, lock_text)


def publish_for(registry: Registry, built: Built, sbom: str, report: Reporter) -> None:
    """Push `sbom` beside the built deps image (its subject), before the image itself."""
    push_sbom(registry, DEPS_REPOSITORY, built.tag, sbom, built.descriptor())
    report.step(f"pushed the SBOM as {built.image.rsplit(':', 1)[0]}:{sbom_tag(built.tag)}")


# -- beside the image in the registry -----------------------------------------------------------
def push_sbom(registry: Registry, repository: str, deps_tag: str, sbom: str, subject: Mapping[str, Any]) -> str:
    """Push `sbom` as an OCI artifact tagged `<deps tag>.sbom` whose subject is the image; return its digest."""
    body = sbom.encode()
    with tempfile.TemporaryDirectory(prefix="production-control-sbom-") as tmp:
        layout = Path(tmp)
        digest = _write_blob(layout, body)
        _write_blob(layout, b"{}")
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": SBOM_MEDIA_TYPE,
            "config": EMPTY_CONFIG,
            "layers": [{"mediaType": SBOM_MEDIA_TYPE, "digest": digest, "size": len(body),
                        "annotations": {"org.opencontainers.image.title": "sbom.cdx.json"}}],
            "subject": {"mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"]},
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = _write_blob(layout, manifest_bytes)
        (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
            {"mediaType": manifest["mediaType"], "digest": manifest_digest, "size": len(manifest_bytes)}]}))
        return registry.push_layout(layout, repository, sbom_tag(deps_tag))


def _write_blob(layout: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def fetch_sbom(registry: Registry, repository: str, deps_tag: str) -> dict[str, Any] | None:
    """The SBOM pushed beside `deps_tag`, or None when there is none."""
    if not registry.has_tag(repository, sbom_tag(deps_tag)):
        return None
    manifest = registry.manifest(repository, sbom_tag(deps_tag))
    # The SBOM is the artifact's one layer.
    document = json.loads(registry.blob(repository, sbom_tag(deps_tag), manifest.layers[0].digest))
    return document if isinstance(document, dict) else None


def sbom_packages(document: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """{"pypi": {name: version}, "deb": {name: version}} from an SBOM this module made."""
    kinds: dict[str, dict[str, str]] = {"pypi": {}, "deb": {}}
    for component in document.get("components", []):
        purl = str(component.get("purl", ""))
        for kind in kinds:
            if purl.startswith(f"pkg:{kind}/"):
                kinds[kind][component["name"]] = component.get("version", "")
    return kinds

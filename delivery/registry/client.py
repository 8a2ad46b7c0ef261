"""The registry, through skopeo: push an OCI layout, read manifests, configs and tags.

skopeo (containers/image, Debian's `skopeo` package) speaks the registry protocol as
registries expect it: the Bearer token flow from the WWW-Authenticate challenge with a
token per repository scope (anonymous pull tokens too) and Basic; redirects without
credentials to another host; retries of connection errors and of 429 (after Retry-After); tag list
pagination; cross-repository blob mounts; blobs streamed from disk. `skopeo copy
--preserve-digests` pushes the build's OCI layout byte for byte, so the reproducible
digests hold. What is left here: the reads the pull prediction needs, turned into typed
values (`Manifest`, config), retries with backoff of 5xx answers (skopeo 1.9 does not retry
those), and one clear line for each failure. Credentials come from
delivery/registry/auth.py and reach skopeo in a private auth file, never argv.
docs/images.md says why skopeo and what was measured.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery.config.platforms import AMD64, index_platforms, pick, platform_of
from delivery.errors import DeliveryError, RegistryUnreachable
from delivery.registry.auth import Credentials, auth_file, registry_host
from delivery.registry.local import NotStarted, RegistryServer
from delivery.registry.local import start as start_server
from delivery.registry.skopeo import BACKOFF, RETRIES, certs_dir, failure_kind, skopeo_argv, skopeo_reason
from delivery.reporting import Reporter, Silent

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
LOCAL_REGISTRY_STATE = Path("/var/tmp/production-control-registry")  # + "-<port>"
SILENT = Silent()


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """One platform's image manifest, as the registry serves it."""

    digest: str
    size: int  # bytes of the manifest document itself
    config: Blob
    layers: tuple[Blob, ...]
    index_digest: str | None = None  # the index it was chosen from: what an engine records when it pulls the tag

    @property
    def layer_bytes(self) -> int:
        return sum(layer.size for layer in self.layers)


def is_loopback(address: str) -> bool:
    """Is the registry (host[:port][/namespace]) on this machine?"""
    address = address.split("/", 1)[0]
    if address.startswith("["):
        host = address[1:].partition("]")[0]  # [::1] or [::1]:5000
    else:
        host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    return host in ("localhost", "::1") or host.startswith("127.")



class Registry:
    """The registry at `location` (host[:port][/namespace...]), through skopeo.

    Repositories are named without the namespace (`production-control`); the namespace is
    put in front. HTTPS, verified (with the CA of certs.d when there is one), except on a
    loopback address without a certs.d entry, which is plain HTTP as Docker allows it.
    """

    def __init__(self, location: str, credentials: Credentials | None = None, timeout: float = 60,
                 run: Callable[..., subprocess.CompletedProcess[bytes]] = subprocess.run, sleep: Callable[[float], None] = time.sleep):
        self.location = location
        self.address, _, self.namespace = location.partition("/")  # address: host[:port], as before
        self.host = registry_host(location)
        self.credentials = credentials
        self.timeout = timeout
        self._run = run
        self._sleep = sleep

    @property
    def tls_verify(self) -> bool:
        return not (is_loopback(self.address) and certs_dir(self.address) is None)

    def name(self, repository: str) -> str:
        """host[:port]/namespace/repository."""
        return f"{self.location}/{repository}"

    def reference(self, repository: str, reference: str) -> str:
        separator = "@" if reference.startswith("sha256:") else ":"
        return f"docker://{self.name(repository)}{separator}{reference}"

    # -- running skopeo --------------------------------------------------------------------------
    def _skopeo(self, command: str, reference: str, what: str, *, extra: tuple[str, ...] = (), source: str | None = None,
                timeout: float | None = None, allow_missing: bool = False, registry_side: str = "dest") -> bytes | None:
        delay = BACKOFF
        for attempt in range(1, RETRIES + 2):
            with contextlib.ExitStack() as stack:
                auth = stack.enter_context(auth_file(self.host, self.credentials)) if self.credentials else None
                argv = skopeo_argv(command, reference, tls_verify=self.tls_verify, auth=auth, timeout=timeout,
                                   extra=extra, source=source, registry_side=registry_side)
                try:
                    done = self._run(argv, capture_output=True, stdin=subprocess.DEVNULL)
                except FileNotFoundError:
                    raise DeliveryError("skopeo is not installed: run `scripts/setup` (or `apt-get install skopeo`)") from None
            if done.returncode == 0:
                return bytes(done.stdout)
            reason = self._redact(skopeo_reason(done.stderr.decode(errors="replace")))
            kind = failure_kind(reason)
            if kind != "unavailable" or attempt > RETRIES:
                break
            self._sleep(delay)  # a 5xx: the registry may be restarting or overloaded; each try is idempotent
            delay *= 2
        if kind == "missing" and allow_missing:
            return None
        if kind == "unavailable":
            reason += f" ({RETRIES + 1} tries)"
        raise self._error(kind, reason, what)

    def _redact(self, text: str) -> str:
        if self.credentials and self.credentials.secret:
            text = text.replace(self.credentials.secret, "***")
        return text

    def _error(self, kind: str, reason: str, what: str) -> DeliveryError:
        if kind == "refused":
            given = f"the credentials from {self.credentials.source}" if self.credentials else "anonymous access"
            return DeliveryError(
                f"registry {self.location} refused {given} for {what} ({reason}): `docker login {self.host}`, or set "
                "deploy.registry_user and its password variable ($REGISTRY_PASSWORD)"
            )
        if kind == "unreachable":
            what_to_do = "start it (`invoke registry`) or" if is_loopback(self.address) else "check the network, or"
            return RegistryUnreachable(f"registry {self.address} is unreachable ({reason}): {what_to_do} "
                                       "set deploy.registry / INVOKE_DEPLOY_REGISTRY")
        if kind == "tls":
            return DeliveryError(
                f"registry {self.address}: TLS failed ({reason}): put its CA in /etc/docker/certs.d/{self.address}/ca.crt"
            )
        if kind == "missing":
            return DeliveryError(f"{what} is not in the registry: build and push it first, or pick one from `invoke status`")
        if kind == "unavailable":
            return DeliveryError(f"registry {self.location} failed for {what}: {reason}: retry when the registry is back")
        return DeliveryError(f"registry {self.location} failed for {what}: {reason}")

    # -- push --------------------------------------------------------------------------------------
    def push_layout(self, layout: Path, repository: str, tag: str, report: Reporter = SILENT) -> str:
        """Push the image in an OCI layout directory as repository:tag, digests preserved; return its digest.

        A multi-platform build's layout holds one index: it is pushed with every platform's
        image (`skopeo copy --all`), and its digest is returned. skopeo sends a blob only when
        the registry lacks it (looked up, else mounted from a repository it saw the blob in,
        else streamed from disk).
        """
        index = json.loads((layout / "index.json").read_text())
        manifests = [m for m in index.get("manifests", []) if m.get("mediaType") in MANIFEST_TYPES]
        if len(manifests) != 1:
            raise DeliveryError(f"the build produced {len(manifests)} images, expected 1 (an image or one multi-platform index)")
        digest = str(manifests[0]["digest"])
        extra = ("--preserve-digests", "--quiet") + (("--all",) if manifests[0]["mediaType"] in INDEX_TYPES else ())
        target = self.reference(repository, tag)
        started = time.monotonic()
        self._skopeo("copy", target, f"{self.name(repository)}:{tag}", extra=extra, source=f"oci:{layout}")
        report.step(f"pushed {self.name(repository)}:{tag} in {time.monotonic() - started:.1f}s (skopeo copy)")
        return digest

    # -- reads ---------------------------------------------------------------------------------------
    def ping(self) -> None:
        """Something answers HTTP at the registry's address (no credentials are sent)."""
        scheme = "https" if self.tls_verify else "http"
        try:
            with urllib.request.urlopen(f"{scheme}://{self.address}/v2/", timeout=5):
                return
        except urllib.error.HTTPError:
            return  # 401 and friends: a registry answers
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if "CERTIFICATE" in str(reason).upper():
                return  # it answers; skopeo will say what to do about its certificate
            what_to_do = "start it (`invoke registry`) or" if is_loopback(self.address) else "check the network, or"
            raise RegistryUnreachable(
                f"registry {self.address} is unreachable ({reason}): {what_to_do} set deploy.registry / INVOKE_DEPLOY_REGISTRY"
            ) from exc

    def raw_manifest(self, repository: str, reference: str, allow_missing: bool = False) -> bytes | None:
        return self._skopeo("inspect", self.reference(repository, reference), f"{self.name(repository)}:{reference}",
                            extra=("--raw",), timeout=self.timeout, allow_missing=allow_missing)

    def has_tag(self, repository: str, tag: str) -> bool:
        return self.raw_manifest(repository, tag, allow_missing=True) is not None

    def tags(self, repository: str) -> list[str]:
        """Every tag of the repository (skopeo follows the Link header's pages)."""
        body = self._skopeo("list-tags", f"docker://{self.name(repository)}", f"the tags of {self.name(repository)}",
                            timeout=self.timeout, allow_missing=True)
        if body is None:
            return []
        return sorted(self._json(body, f"tags of {repository}").get("Tags") or [])

    def digest(self, repository: str, reference: str) -> str:
        """The digest of what repository:reference names: its index for a multi-platform image, else its manifest."""
        body = self.raw_manifest(repository, reference)
        assert body is not None
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def index_platforms(self, repository: str, reference: str) -> list[str] | None:
        """The platforms of repository:reference when it names an index (in its order); None for a single image."""
        body = self.raw_manifest(repository, reference)
        assert body is not None
        document = self._json(body, f"manifest {repository}:{reference}")
        return index_platforms(document) if is_index(document) else None

    def manifest(self, repository: str, reference: str, platform: str = AMD64) -> Manifest:
        """The image manifest of repository:reference (an index is resolved to `platform`)."""
        body = self.raw_manifest(repository, reference)
        assert body is not None
        document = self._json(body, f"manifest {repository}:{reference}")
        media_type = media_type_of(document)
        if is_index(document):
            chosen = self.manifest(repository, pick_platform(document, platform), platform)
            return dataclasses.replace(chosen, index_digest="sha256:" + hashlib.sha256(body).hexdigest())
        if "config" not in document and media_type not in MANIFEST_TYPES:
            raise DeliveryError(f"registry {self.location} served {repository}:{reference} as '{media_type}', not an image manifest")
        return parse_manifest(document, digest="sha256:" + hashlib.sha256(body).hexdigest(), size=len(body))

    def config(self, repository: str, manifest: Manifest) -> dict[str, Any]:
        """The image config (holds rootfs.diff_ids, env, labels) of a manifest."""
        body = self._skopeo("inspect", self.reference(repository, manifest.digest), f"the config of {self.name(repository)}",
                            extra=("--config", "--raw"), timeout=self.timeout)
        assert body is not None
        return self._json(body, f"config of {repository}")

    def blob(self, repository: str, reference: str, digest: str) -> bytes:
        """One blob of the image or artifact `reference` (e.g. an SBOM layer): copied with skopeo, then read."""
        with tempfile.TemporaryDirectory(prefix="production-control-blob-") as tmp:
            self._skopeo("copy", f"dir:{tmp}", f"{self.name(repository)}:{reference}",
                         extra=("--preserve-digests", "--quiet"), source=self.reference(repository, reference),
                         registry_side="src")
            path = Path(tmp) / digest.partition(":")[2]
            if not path.is_file():
                raise DeliveryError(f"registry {self.location}: {self.name(repository)}:{reference} has no blob {digest}")
            return path.read_bytes()

    def _json(self, body: bytes, what: str) -> dict[str, Any]:
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise DeliveryError(f"registry {self.location} sent something that is not JSON for {what}") from exc
        if not isinstance(value, dict):
            raise DeliveryError(f"registry {self.location} sent unexpected JSON for {what}")
        return value

def media_type_of(document: Mapping[str, Any]) -> str:
    """Pure: a manifest document's media type; an index that names none is known by its `manifests`."""
    return str(document.get("mediaType") or (INDEX_TYPES[0] if "manifests" in document else ""))


def is_index(document: Mapping[str, Any]) -> bool:
    """Pure: whether a manifest document is an image index (OCI) or a manifest list (Docker): one image per platform."""
    return media_type_of(document) in INDEX_TYPES


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algorithm / hexdigest


def parse_manifest(document: dict[str, Any], *, digest: str, size: int) -> Manifest:
    """Pure: a Manifest from a v2/OCI image manifest document."""
    try:
        config = Blob(document["config"]["digest"], int(document["config"]["size"]))
        layers = tuple(Blob(layer["digest"], int(layer["size"])) for layer in document["layers"])
    except (KeyError, TypeError) as exc:
        raise DeliveryError(f"malformed image manifest {digest}: missing {exc}: is the registry serving images?") from exc
    except ValueError as exc:
        raise DeliveryError(f"malformed image manifest {digest}: a size is not a number ({exc})") from exc
    return Manifest(digest=digest, size=size, config=config, layers=layers)


def pick_platform(index: dict[str, Any], platform: str) -> str:
    """Pure: the digest of `platform`'s manifest in an index (attestation entries are skipped)."""
    return str(pick(index, platform)["digest"])


def layout_manifests(layout: Path) -> list[tuple[str, dict[str, Any]]]:
    """(platform, descriptor) of each image manifest in an OCI layout: one, or each entry of its one index.

    The platform is "" for a single-platform build (BuildKit names none there).
    """
    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    if top.get("mediaType") not in INDEX_TYPES:
        return [(platform_of(top), top)]
    nested = json.loads(blob_path(layout, top["digest"]).read_bytes())
    return [(platform_of(entry), entry) for entry in nested.get("manifests", [])
            if entry.get("mediaType") in MANIFEST_TYPES[2:] and "unknown" not in platform_of(entry)]  # no attestations


def start_local_registry(address: str) -> str:
    """Start Debian's `docker-registry` on a loopback address for a developer machine (as the test
    bed starts its registries: delivery/registry/local.py); return how it was started."""
    if not is_loopback(address):
        raise DeliveryError(f"registry {address} is unreachable, and only a loopback registry can be started for you")
    if not shutil.which("docker-registry"):
        raise DeliveryError(f"registry {address} is unreachable and docker-registry is not installed: "
                            "`sudo apt-get install docker-registry`, or start a registry there")  # fmt: skip
    port = address.rpartition("]:")[2] if address.startswith("[") else address.rpartition(":")[2]
    port = port if port.isdigit() else "80"
    state = LOCAL_REGISTRY_STATE.with_name(f"{LOCAL_REGISTRY_STATE.name}-{port}")
    try:
        start_server(RegistryServer(state, f"127.0.0.1:{port}"), timeout=20)
    except NotStarted as error:
        raise DeliveryError(f"the local registry did not start: {error}") from None
    return f"docker-registry in the background (data and log in {state})"

"""A small client for the registry's HTTP API (Docker Registry v2 / OCI distribution).

Used to ask whether a tag exists (so `build-deps` can skip work), to read the
manifest and config of a release (so `deploy` can predict and verify what a
host downloads), and to start a local registry on demand for new developers.
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery.errors import DeliveryError

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
LOCAL_REGISTRY_STATE = Path("/var/tmp/production-control-registry")


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

    @property
    def layer_bytes(self) -> int:
        return sum(layer.size for layer in self.layers)


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


class Registry:
    """The registry at `address` (host[:port]); plain HTTP for loopback addresses, HTTPS otherwise."""

    def __init__(self, address: str, user: str | None = None, password: str | None = None, timeout: float = 30):
        self.address = address
        self.base = f"{'http' if is_loopback(address) else 'https'}://{address}/v2/"
        self.timeout = timeout
        self._auth = None
        if user:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"

    # -- HTTP ---------------------------------------------------------------
    def _request(self, method: str, path: str, accept: tuple[str, ...] = ()) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.base + path, method=method)
        if accept:
            request.add_header("Accept", ", ".join(accept))
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise DeliveryError(
                    f"registry {self.address} refused the credentials: set deploy.registry_user and the password "
                    "variable (REGISTRY_PASSWORD), or `docker login` for the CLI"
                ) from exc
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(
                f"registry {self.address} is unreachable ({reason}): start it (`invoke registry`) "
                "or set deploy.registry / INVOKE_DEPLOY_REGISTRY"
            ) from exc

    def ping(self) -> None:
        status, _, _ = self._request("GET", "")
        if status != 200:
            raise DeliveryError(f"registry {self.address} answered HTTP {status} on /v2/: is it a Docker registry?")

    def has_tag(self, repository: str, tag: str) -> bool:
        status, _, _ = self._request("HEAD", f"{repository}/manifests/{tag}", MANIFEST_TYPES)
        if status in (200, 404):
            return status == 200
        raise DeliveryError(f"registry {self.address} answered HTTP {status} for {repository}:{tag}")

    def tags(self, repository: str) -> list[str]:
        status, _, body = self._request("GET", f"{repository}/tags/list")
        if status == 404:
            return []
        if status != 200:
            raise DeliveryError(f"registry {self.address} answered HTTP {status} listing tags of {repository}")
        return sorted(self._json(body, f"tags of {repository}").get("tags") or [])

    def manifest(self, repository: str, reference: str, platform: str = "linux/amd64") -> Manifest:
        """The image manifest of repository:reference (an index is resolved to `platform`)."""
        status, headers, body = self._request("GET", f"{repository}/manifests/{reference}", MANIFEST_TYPES)
        if status == 404:
            raise DeliveryError(
                f"{self.address}/{repository}:{reference} is not in the registry: build and push it first, "
                "or pick one from `invoke status`"
            )
        if status != 200:
            raise DeliveryError(f"registry {self.address} answered HTTP {status} for {repository}:{reference}")
        content_type = headers.get("content-type", "").split(";")[0].strip()
        document = self._json(body, f"manifest {repository}:{reference}")
        media_type = document.get("mediaType") or content_type
        if media_type in INDEX_TYPES:
            return self.manifest(repository, pick_platform(document, platform), platform)
        if media_type not in MANIFEST_TYPES:
            raise DeliveryError(
                f"registry {self.address} served {repository}:{reference} as '{content_type}', not an image manifest"
            )
        digest = headers.get("docker-content-digest") or ""
        return parse_manifest(document, digest=digest, size=len(body))

    def config(self, repository: str, manifest: Manifest) -> dict[str, Any]:
        """The image config (holds rootfs.diff_ids, env, labels) of a manifest."""
        status, _, body = self._request("GET", f"{repository}/blobs/{manifest.config.digest}")
        if status != 200:
            raise DeliveryError(f"registry {self.address} answered HTTP {status} for the config of {repository}")
        return self._json(body, f"config of {repository}")

    def _json(self, body: bytes, what: str) -> dict[str, Any]:
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise DeliveryError(f"registry {self.address} sent something that is not JSON for {what}") from exc
        if not isinstance(value, dict):
            raise DeliveryError(f"registry {self.address} sent unexpected JSON for {what}")
        return value


def parse_manifest(document: dict[str, Any], *, digest: str, size: int) -> Manifest:
    """Pure: a Manifest from a v2/OCI image manifest document."""
    try:
        config = Blob(document["config"]["digest"], int(document["config"]["size"]))
        layers = tuple(Blob(layer["digest"], int(layer["size"])) for layer in document["layers"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DeliveryError(f"malformed image manifest {digest or ''}: missing {exc}") from exc
    return Manifest(digest=digest, size=size, config=config, layers=layers)


def pick_platform(index: dict[str, Any], platform: str) -> str:
    """Pure: the digest of `platform`'s manifest in an index (attestation entries are skipped)."""
    os_name, _, arch = platform.partition("/")
    for entry in index.get("manifests", []):
        p = entry.get("platform") or {}
        if p.get("os") == os_name and p.get("architecture") == arch:
            return entry["digest"]
    raise DeliveryError(f"the image has no {platform} variant: build it for {platform}")


def start_local_registry(address: str, docker_client: Any = None) -> str:
    """Start a registry on a loopback address for a developer machine; return how it was started.

    Uses Debian's `docker-registry` when installed (no image to pull), else the
    `registry:2` image on the local engine.
    """
    if not is_loopback(address):
        raise DeliveryError(f"registry {address} is unreachable, and only a loopback registry can be started for you")
    port = address.rsplit(":", 1)[1] if ":" in address else "80"
    if shutil.which("docker-registry"):
        LOCAL_REGISTRY_STATE.mkdir(parents=True, exist_ok=True)
        config = LOCAL_REGISTRY_STATE / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {LOCAL_REGISTRY_STATE / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        log = open(LOCAL_REGISTRY_STATE / "registry.log", "ab")
        subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log, start_new_session=True)
        how = f"docker-registry (data in {LOCAL_REGISTRY_STATE})"
    elif docker_client is not None:
        docker_client.run(
            "registry:2", detach=True, name="production-control-registry", restart="unless-stopped",
            publish=[(f"127.0.0.1:{port}", 5000)], volumes=[("production-control-registry", "/var/lib/registry")],
        )
        how = "container production-control-registry (registry:2)"
    else:
        raise DeliveryError(f"registry {address} is unreachable: start one (`invoke registry`)")
    registry = Registry(address)
    deadline = time.monotonic() + 20
    while True:
        try:
            registry.ping()
            return how
        except DeliveryError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

"""A small client for the registry's HTTP API (Docker Registry v2 / OCI distribution).

Used to ask whether a tag exists (so `build-deps` can skip work), to read the
manifest and config of a release (so `deploy` can predict and verify what a
host downloads), and to start a local registry on demand for new developers.
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from delivery.errors import DeliveryError

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
LOCAL_REGISTRY_STATE = Path("/var/tmp/production-control-registry")  # + "-<port>"


class RegistryUnreachable(DeliveryError):
    """Nothing answers at the registry's address (as opposed to an answer we do not like)."""


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
    if address.startswith("["):
        host = address[1:].partition("]")[0]  # [::1] or [::1]:5000
    else:
        host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    return host in ("localhost", "::1") or host.startswith("127.")


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
    def _request(self, method: str, path: str, accept: tuple[str, ...] = (), data: Any = None,
                 content_type: str | None = None, length: int | None = None) -> tuple[int, dict[str, str], bytes]:
        url = path if path.startswith("http") else self.base + path
        request = urllib.request.Request(url, method=method, data=data)
        if content_type:
            request.add_header("Content-Type", content_type)
        if length is not None:
            request.add_header("Content-Length", str(length))
        elif data is None and method in ("POST", "PUT"):
            request.add_header("Content-Length", "0")
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
            what_to_do = "start it (`invoke registry`) or" if is_loopback(self.address) else "check the network, or"
            raise RegistryUnreachable(
                f"registry {self.address} is unreachable ({reason}): {what_to_do} "
                "set deploy.registry / INVOKE_DEPLOY_REGISTRY"
            ) from exc

    def push_layout(self, layout: Path, repository: str, tag: str, mount_from: tuple[str, ...] = (),
                    progress: Callable[[str], None] = lambda _: None) -> str:
        """Push the image in an OCI layout directory as repository:tag; return its manifest digest.

        A blob is uploaded only when the registry lacks it: it is first looked up,
        then mounted from `mount_from` repositories, and only then sent.
        """
        index = json.loads((layout / "index.json").read_text())
        manifests = [m for m in index.get("manifests", []) if m.get("mediaType") in MANIFEST_TYPES[2:]]
        if len(manifests) != 1:
            raise DeliveryError(f"the build produced {len(manifests)} image manifests, expected 1")
        descriptor = manifests[0]
        body = blob_path(layout, descriptor["digest"]).read_bytes()
        document = json.loads(body)
        sent = 0
        for blob in [document["config"], *document["layers"]]:
            sent += self._push_blob(layout, repository, blob["digest"], int(blob["size"]), mount_from)
        progress(f"uploaded {sent} new blob(s) of {1 + len(document['layers'])} to {self.address}/{repository}")
        status, headers, answer = self._request("PUT", f"{repository}/manifests/{tag}", data=body,
                                                content_type=descriptor["mediaType"])
        if status not in (200, 201):
            raise DeliveryError(f"registry {self.address} refused the manifest of {repository}:{tag} (HTTP {status}): {answer[:200]!r}")
        return headers.get("docker-content-digest") or descriptor["digest"]

    def _push_blob(self, layout: Path, repository: str, digest: str, size: int, mount_from: tuple[str, ...]) -> int:
        status, _, _ = self._request("HEAD", f"{repository}/blobs/{digest}")
        if status == 200:
            return 0
        for source in mount_from:
            status, headers, _ = self._request("POST", f"{repository}/blobs/uploads/?mount={digest}&from={source}")
            if status == 201:
                return 0
        status, headers, _ = self._request("POST", f"{repository}/blobs/uploads/")
        if status != 202 or "location" not in headers:
            raise DeliveryError(f"registry {self.address} refused an upload to {repository} (HTTP {status})")
        location = headers["location"]
        if not location.startswith("http"):
            location = self.base[: -len("/v2/")] + location
        location += ("&" if "?" in location else "?") + f"digest={digest}"
        with blob_path(layout, digest).open("rb") as data:
            status, _, answer = self._request("PUT", location, data=data, content_type="application/octet-stream", length=size)
        if status != 201:
            raise DeliveryError(f"registry {self.address} refused blob {digest[:19]} (HTTP {status}): {answer[:200]!r}")
        return 1

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
        digest = headers.get("docker-content-digest") or "sha256:" + hashlib.sha256(body).hexdigest()
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
    port = address.rpartition("]:")[2] if address.startswith("[") else address.rpartition(":")[2]
    port = port if port.isdigit() else "80"
    if shutil.which("docker-registry"):
        state = LOCAL_REGISTRY_STATE.with_name(f"{LOCAL_REGISTRY_STATE.name}-{port}")
        state.mkdir(parents=True, exist_ok=True)
        config = state / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {state / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        log = open(state / "registry.log", "ab")
        subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log, start_new_session=True)
        how = f"docker-registry in the background (data and log in {state})"
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

"""The registry client: manifest parsing, platform choice, and HTTP behaviour against a scripted in-process registry."""

import base64
import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from delivery.errors import DeliveryError
from delivery.registry import (
    MANIFEST_TYPES,
    Blob,
    Manifest,
    Registry,
    is_loopback,
    parse_manifest,
    pick_platform,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REPO = "production-control"
TAG = "1.0.0-0123456789ab"


def sha(char: str) -> str:
    return "sha256:" + char * 64


def image_manifest(media_type: str, config_type: str, layer_type: str) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": sha("c"), "size": 1469},
        "layers": [
            {"mediaType": layer_type, "digest": sha("1"), "size": 29126484},
            {"mediaType": layer_type, "digest": sha("2"), "size": 3547},
        ],
    }


DOCKER_DOC = image_manifest(
    DOCKER_MANIFEST, "application/vnd.docker.container.image.v1+json", "application/vnd.docker.image.rootfs.diff.tar.gzip"
)
OCI_DOC = image_manifest(OCI_MANIFEST, "application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar+gzip")
EXPECTED = Manifest(
    digest=sha("m"), size=812, config=Blob(sha("c"), 1469), layers=(Blob(sha("1"), 29126484), Blob(sha("2"), 3547))
)

ATTESTATION = {
    "mediaType": OCI_MANIFEST,
    "digest": sha("9"),
    "size": 566,
    "platform": {"architecture": "unknown", "os": "unknown"},
    "annotations": {"vnd.docker.reference.digest": sha("a"), "vnd.docker.reference.type": "attestation-manifest"},
}
INDEX = {
    "schemaVersion": 2,
    "mediaType": OCI_INDEX,
    "manifests": [
        ATTESTATION,
        {"mediaType": OCI_MANIFEST, "digest": sha("b"), "size": 700, "platform": {"architecture": "arm64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": sha("a"), "size": 812, "platform": {"architecture": "amd64", "os": "linux"}},
    ],
}


# -- pure ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("document", [pytest.param(DOCKER_DOC, id="docker-v2"), pytest.param(OCI_DOC, id="oci")])
def test_parse_manifest(document: dict) -> None:
    manifest = parse_manifest(document, digest=sha("m"), size=812)
    assert manifest == EXPECTED
    assert manifest.layer_bytes == 29126484 + 3547


def test_parse_manifest_without_layers_has_no_layer_bytes() -> None:
    manifest = parse_manifest({"config": {"digest": sha("c"), "size": "10"}, "layers": []}, digest="", size=0)
    assert manifest == Manifest(digest="", size=0, config=Blob(sha("c"), 10), layers=())
    assert manifest.layer_bytes == 0


@pytest.mark.parametrize(
    ("document", "missing"),
    [
        pytest.param({"layers": []}, "'config'", id="no-config"),
        pytest.param({"config": {"digest": sha("c"), "size": 1}}, "'layers'", id="no-layers"),
        pytest.param({"config": {"size": 1}, "layers": []}, "'digest'", id="config-without-digest"),
        pytest.param({"config": {"digest": sha("c"), "size": 1}, "layers": [{"digest": sha("1")}]}, "'size'", id="layer-without-size"),
        pytest.param({"config": {"digest": sha("c"), "size": 1}, "layers": None}, "", id="layers-null"),
        pytest.param({"config": "sha256:c", "layers": []}, "", id="config-not-an-object"),
    ],
)
def test_parse_manifest_rejects_malformed_documents(document: dict, missing: str) -> None:
    with pytest.raises(DeliveryError, match=rf"^malformed image manifest {sha('m')}: missing {missing}"):
        parse_manifest(document, digest=sha("m"), size=1)


@pytest.mark.parametrize(
    ("platform", "digest"),
    [pytest.param("linux/amd64", sha("a"), id="amd64-after-attestation"), pytest.param("linux/arm64", sha("b"), id="arm64")],
)
def test_pick_platform_skips_attestations(platform: str, digest: str) -> None:
    assert pick_platform(INDEX, platform) == digest


@pytest.mark.parametrize(
    "index",
    [
        pytest.param(INDEX, id="other-platforms-only"),
        pytest.param({"manifests": [ATTESTATION]}, id="attestation-only"),
        pytest.param({}, id="no-manifests"),
    ],
)
def test_pick_platform_without_the_platform(index: dict) -> None:
    with pytest.raises(DeliveryError, match=r"^the image has no linux/s390x variant: build it for linux/s390x$"):
        pick_platform(index, "linux/s390x")


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        pytest.param("localhost:5000", True, id="localhost-port"),
        pytest.param("localhost", True, id="localhost"),
        pytest.param("127.0.0.1:5000", True, id="ipv4-loopback-port"),
        pytest.param("127.0.0.53", True, id="ipv4-loopback-net"),
        pytest.param("::1", True, id="ipv6-bare"),
        pytest.param("[::1]", True, id="ipv6-bracketed"),
        pytest.param(
            "[::1]:5000",
            True,
            id="ipv6-bracketed-port",
        ),
        pytest.param("registry.example.com:5000", False, id="remote-host"),
        pytest.param("localhost.example.com:443", False, id="localhost-prefixed-domain"),
        pytest.param("10.0.0.1:5000", False, id="private-ip"),
        pytest.param("192.168.1.127:5000", False, id="127-not-at-the-start"),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


@pytest.mark.parametrize(
    ("address", "base"),
    [
        pytest.param("localhost:5000", "http://localhost:5000/v2/", id="loopback-plain-http"),
        pytest.param("registry.example.com", "https://registry.example.com/v2/", id="remote-https"),
    ],
)
def test_registry_base_url(address: str, base: str) -> None:
    assert Registry(address).base == base


# -- a scripted registry -------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeRegistry:
    """Answers (method, path-with-query) from `routes`; anything else is 404. Records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Reply] = {}
        self.seen: list[Seen] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                reply = fake.routes.get((self.command, self.path), Reply(404, b'{"errors":[{"code":"NOT_FOUND"}]}'))
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = do_POST = do_PUT = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def reply(self, method: str, path: str, status: int, body: bytes | dict = b"", **headers: str) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.routes[(method, path)] = Reply(status, data, {k.replace("_", "-"): v for k, v in headers.items()})

    def requests(self) -> list[tuple[str, str]]:
        return [(s.method, s.path) for s in self.seen]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRegistry]:
    monkeypatch.setenv("no_proxy", "*")  # a developer's http_proxy must not catch 127.0.0.1
    server = FakeRegistry()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def registry(fake: FakeRegistry) -> Registry:
    return Registry(fake.address, timeout=5)


@pytest.mark.parametrize(("status", "exists"), [pytest.param(200, True, id="200-exists"), pytest.param(404, False, id="404-absent")])
def test_has_tag(fake: FakeRegistry, registry: Registry, status: int, exists: bool) -> None:
    fake.reply("HEAD", f"/v2/{REPO}/manifests/{TAG}", status)
    assert registry.has_tag(REPO, TAG) is exists
    assert fake.requests() == [("HEAD", f"/v2/{REPO}/manifests/{TAG}")]
    assert fake.seen[0].headers["accept"] == ", ".join(MANIFEST_TYPES)


def test_has_tag_on_a_server_error(fake: FakeRegistry, registry: Registry) -> None:
    fake.reply("HEAD", f"/v2/{REPO}/manifests/{TAG}", 500)
    with pytest.raises(DeliveryError, match=rf"^registry {fake.address} answered HTTP 500 for {REPO}:{TAG}$"):
        registry.has_tag(REPO, TAG)


def test_manifest_resolves_an_index_to_linux_amd64(fake: FakeRegistry, registry: Registry) -> None:
    body = json.dumps(OCI_DOC).encode()
    fake.reply("GET", f"/v2/{REPO}/manifests/{TAG}", 200, INDEX, Content_Type=OCI_INDEX, Docker_Content_Digest=sha("i"))
    fake.reply("GET", f"/v2/{REPO}/manifests/{sha('a')}", 200, body, Content_Type=OCI_MANIFEST, Docker_Content_Digest=sha("a"))
    assert registry.manifest(REPO, TAG) == Manifest(
        digest=sha("a"), size=len(body), config=Blob(sha("c"), 1469), layers=(Blob(sha("1"), 29126484), Blob(sha("2"), 3547))
    )
    assert fake.requests() == [("GET", f"/v2/{REPO}/manifests/{TAG}"), ("GET", f"/v2/{REPO}/manifests/{sha('a')}")]


def test_manifest_media_type_from_the_content_type_header(fake: FakeRegistry, registry: Registry) -> None:
    document = {k: v for k, v in DOCKER_DOC.items() if k != "mediaType"}
    fake.reply("GET", f"/v2/{REPO}/manifests/{TAG}", 200, document, Content_Type=f"{DOCKER_MANIFEST}; charset=utf-8",
               Docker_Content_Digest=sha("m"))
    assert registry.manifest(REPO, TAG).digest == sha("m")


def test_manifest_digest_without_the_digest_header_is_the_body_hash(fake: FakeRegistry, registry: Registry) -> None:
    body = json.dumps(OCI_DOC).encode()
    fake.reply("GET", f"/v2/{REPO}/manifests/{TAG}", 200, body, Content_Type=OCI_MANIFEST)
    assert registry.manifest(REPO, TAG).digest == "sha256:" + hashlib.sha256(body).hexdigest()


def test_manifest_served_with_a_wrong_content_type(fake: FakeRegistry, registry: Registry) -> None:
    fake.reply("GET", f"/v2/{REPO}/manifests/{TAG}", 200, {"schemaVersion": 2}, Content_Type="text/html; charset=utf-8")
    with pytest.raises(DeliveryError, match=rf"served {REPO}:{TAG} as 'text/html', not an image manifest"):
        registry.manifest(REPO, TAG)


def test_manifest_that_is_not_json(fake: FakeRegistry, registry: Registry) -> None:
    fake.reply("GET", f"/v2/{REPO}/manifests/{TAG}", 200, b"<html>proxy login</html>", Content_Type=OCI_MANIFEST)
    with pytest.raises(DeliveryError, match=rf"^registry {fake.address} sent something that is not JSON for manifest {REPO}:{TAG}$"):
        registry.manifest(REPO, TAG)


def test_manifest_that_is_json_but_not_an_object(fake: FakeRegistry, registry: Registry) -> None:
    fake.reply("GET", f"/v2/{REPO}/manifests/{TAG}", 200, b"[1, 2]", Content_Type=OCI_MANIFEST)
    with pytest.raises(DeliveryError, match="sent unexpected JSON for manifest"):
        registry.manifest(REPO, TAG)


def test_manifest_not_in_the_registry(fake: FakeRegistry, registry: Registry) -> None:
    with pytest.raises(DeliveryError, match=rf"^{fake.address}/{REPO}:{TAG} is not in the registry: build and push it first"):
        registry.manifest(REPO, TAG)


def test_refused_credentials(fake: FakeRegistry) -> None:
    fake.reply("HEAD", f"/v2/{REPO}/manifests/{TAG}", 401, Www_Authenticate='Basic realm="registry"')
    registry = Registry(fake.address, user="ci", password="s3cret-pw", timeout=5)
    with pytest.raises(DeliveryError, match=rf"^registry {fake.address} refused the credentials") as caught:
        registry.has_tag(REPO, TAG)
    assert fake.seen[0].headers["authorization"] == "Basic " + base64.b64encode(b"ci:s3cret-pw").decode()
    assert "s3cret-pw" not in str(caught.value)


def test_no_authorization_header_without_a_user(fake: FakeRegistry, registry: Registry) -> None:
    registry.has_tag(REPO, TAG)
    assert "authorization" not in fake.seen[0].headers


def test_unreachable_registry() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    # the port is closed now: the connection is refused
    with pytest.raises(DeliveryError, match=rf"^registry {address} is unreachable \(.*\): start it \(`invoke registry`\)"):
        Registry(address, timeout=5).has_tag(REPO, TAG)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(200, {"name": REPO, "tags": ["1.0.1-bbbbbbbbbbbb", "1.0.0-aaaaaaaaaaaa"]}, ["1.0.0-aaaaaaaaaaaa", "1.0.1-bbbbbbbbbbbb"], id="sorted"),
        pytest.param(200, {"name": REPO, "tags": None}, [], id="null-tags"),
        pytest.param(404, {"errors": [{"code": "NAME_UNKNOWN"}]}, [], id="unknown-repository"),
    ],
)
def test_tags(fake: FakeRegistry, registry: Registry, status: int, body: dict, expected: list[str]) -> None:
    fake.reply("GET", f"/v2/{REPO}/tags/list", status, body)
    assert registry.tags(REPO) == expected


def test_config_blob(fake: FakeRegistry, registry: Registry) -> None:
    config = {"rootfs": {"type": "layers", "diff_ids": [sha("d"), sha("e")]}}
    fake.reply("GET", f"/v2/{REPO}/blobs/{sha('c')}", 200, config)
    assert registry.config(REPO, EXPECTED) == config


@pytest.mark.parametrize(("status", "ok"), [pytest.param(200, True, id="registry"), pytest.param(404, False, id="not-a-registry")])
def test_ping(fake: FakeRegistry, registry: Registry, status: int, ok: bool) -> None:
    fake.reply("GET", "/v2/", status, {})
    if ok:
        registry.ping()
    else:
        with pytest.raises(DeliveryError, match=r"answered HTTP 404 on /v2/: is it a Docker registry\?"):
            registry.ping()
    assert fake.requests() == [("GET", "/v2/")]


# -- push_layout -----------------------------------------------------------------------------------------
@dataclass
class Layout:
    path: Path
    manifest: bytes
    manifest_digest: str
    config: str
    mounted: str  # in the deps repository: mounted
    uploaded: str  # nowhere: uploaded
    blobs: dict[str, bytes]


def write_blob(layout: Path, data: bytes) -> str:
    hexdigest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexdigest).write_bytes(data)
    return f"sha256:{hexdigest}"


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    path = tmp_path / "layout"
    (path / "blobs" / "sha256").mkdir(parents=True)
    blobs = {b"config": b'{"rootfs":{}}', b"deps": b"deps layer bytes", b"code": b"code layer bytes, new"}
    digests = {name: write_blob(path, data) for name, data in blobs.items()}
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digests[b"config"], "size": len(blobs[b"config"])},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digests[name], "size": len(blobs[name])}
            for name in (b"deps", b"code")
        ],
    }
    manifest = json.dumps(document).encode()
    manifest_digest = write_blob(path, manifest)
    (path / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": TAG}}],
    }))
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return Layout(path, manifest, manifest_digest, digests[b"config"], digests[b"deps"], digests[b"code"],
                  {digests[name]: data for name, data in blobs.items()})


@pytest.mark.parametrize(
    ("location", "put_path"),
    [
        pytest.param("/v2/{repo}/blobs/uploads/uuid-1?_state=abc", "/v2/{repo}/blobs/uploads/uuid-1?_state=abc&digest={digest}", id="relative-location-with-query"),
        pytest.param("http://{address}/v2/{repo}/blobs/uploads/uuid-2", "/v2/{repo}/blobs/uploads/uuid-2?digest={digest}", id="absolute-location"),
    ],
)
def test_push_layout_sends_only_what_the_registry_lacks(fake: FakeRegistry, registry: Registry, layout: Layout,
                                                        location: str, put_path: str) -> None:
    location = location.format(repo=REPO, address=fake.address)
    put_path = put_path.format(repo=REPO, digest=layout.uploaded)
    fake.reply("HEAD", f"/v2/{REPO}/blobs/{layout.config}", 200)
    fake.reply("POST", f"/v2/{REPO}/blobs/uploads/?mount={layout.mounted}&from=production-control-deps", 201)
    fake.reply("POST", f"/v2/{REPO}/blobs/uploads/?mount={layout.uploaded}&from=production-control-deps", 202,
               Location=f"/v2/{REPO}/blobs/uploads/uuid-mount-attempt")
    fake.reply("POST", f"/v2/{REPO}/blobs/uploads/", 202, Location=location)
    fake.reply("PUT", put_path, 201)
    fake.reply("PUT", f"/v2/{REPO}/manifests/{TAG}", 201, Docker_Content_Digest=layout.manifest_digest)
    progress: list[str] = []

    digest = registry.push_layout(layout.path, REPO, TAG, mount_from=("production-control-deps",), progress=progress.append)

    assert digest == layout.manifest_digest
    assert fake.requests() == [
        ("HEAD", f"/v2/{REPO}/blobs/{layout.config}"),
        ("HEAD", f"/v2/{REPO}/blobs/{layout.mounted}"),
        ("POST", f"/v2/{REPO}/blobs/uploads/?mount={layout.mounted}&from=production-control-deps"),
        ("HEAD", f"/v2/{REPO}/blobs/{layout.uploaded}"),
        ("POST", f"/v2/{REPO}/blobs/uploads/?mount={layout.uploaded}&from=production-control-deps"),
        ("POST", f"/v2/{REPO}/blobs/uploads/"),
        ("PUT", put_path),
        ("PUT", f"/v2/{REPO}/manifests/{TAG}"),
    ]
    blob_put, manifest_put = fake.seen[-2], fake.seen[-1]
    assert blob_put.body == layout.blobs[layout.uploaded]
    assert blob_put.headers["content-type"] == "application/octet-stream"
    assert blob_put.headers["content-length"] == str(len(layout.blobs[layout.uploaded]))
    assert manifest_put.body == layout.manifest
    assert manifest_put.headers["content-type"] == OCI_MANIFEST
    assert progress == [f"uploaded 1 new blob(s) of 3 to {fake.address}/{REPO}"]


def test_push_layout_without_a_digest_header_returns_the_layout_digest(fake: FakeRegistry, registry: Registry, layout: Layout) -> None:
    for digest in (layout.config, layout.mounted, layout.uploaded):
        fake.reply("HEAD", f"/v2/{REPO}/blobs/{digest}", 200)
    fake.reply("PUT", f"/v2/{REPO}/manifests/{TAG}", 201)
    assert registry.push_layout(layout.path, REPO, TAG) == layout.manifest_digest
    assert [m for m, _ in fake.requests()] == ["HEAD", "HEAD", "HEAD", "PUT"]


def test_push_layout_refused_upload(fake: FakeRegistry, registry: Registry, layout: Layout) -> None:
    fake.reply("POST", f"/v2/{REPO}/blobs/uploads/", 500)
    with pytest.raises(DeliveryError, match=rf"^registry {fake.address} refused an upload to {REPO} \(HTTP 500\)$"):
        registry.push_layout(layout.path, REPO, TAG)
    assert ("PUT", f"/v2/{REPO}/manifests/{TAG}") not in fake.requests()


def test_push_layout_refused_manifest(fake: FakeRegistry, registry: Registry, layout: Layout) -> None:
    for digest in (layout.config, layout.mounted, layout.uploaded):
        fake.reply("HEAD", f"/v2/{REPO}/blobs/{digest}", 200)
    fake.reply("PUT", f"/v2/{REPO}/manifests/{TAG}", 400, b'{"errors":[{"code":"MANIFEST_INVALID"}]}')
    with pytest.raises(DeliveryError, match=rf"refused the manifest of {REPO}:{TAG} \(HTTP 400\): .*MANIFEST_INVALID"):
        registry.push_layout(layout.path, REPO, TAG)


@pytest.mark.parametrize("count", [pytest.param(0, id="no-manifest"), pytest.param(2, id="two-manifests")])
def test_push_layout_needs_exactly_one_image_manifest(registry: Registry, layout: Layout, count: int) -> None:
    index = json.loads((layout.path / "index.json").read_text())
    index["manifests"] = index["manifests"] * count
    (layout.path / "index.json").write_text(json.dumps(index))
    with pytest.raises(DeliveryError, match=rf"^the build produced {count} image manifests, expected 1$"):
        registry.push_layout(layout.path, REPO, TAG)


def test_parse_manifest_says_when_a_size_is_not_a_number() -> None:
    document = {"config": {"digest": sha("c"), "size": "big"}, "layers": []}
    with pytest.raises(DeliveryError, match=rf"^malformed image manifest {sha('m')}: a size is not a number"):
        parse_manifest(document, digest=sha("m"), size=1)

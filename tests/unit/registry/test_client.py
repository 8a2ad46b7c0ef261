"""The registry: manifest parsing, platform choice, and the client over a scripted runner in place of skopeo (skopeo's own
command lines and answers: test_skopeo.py)."""

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from delivery.errors import DeliveryError, RegistryUnreachable
from delivery.registry.auth import Credentials
from delivery.registry.client import Blob, Manifest, Registry, is_loopback, parse_manifest, pick_platform

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
    with pytest.raises(DeliveryError) as raised:
        pick_platform(index, "linux/s390x")
    offered = ", ".join(e["platform"]["os"] + "/" + e["platform"]["architecture"] for e in index.get("manifests", [])
                        if (e.get("platform") or {}).get("os") not in (None, "unknown"))
    assert str(raised.value) == (
        f"the image has no linux/s390x variant (it has {offered or 'none'}): build it for linux/s390x "
        "(add it to deploy.platforms, then `invoke build-deps` and `invoke build-app`); nothing was changed"
    )


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
        pytest.param("127.0.0.1:5000/team/app", True, id="loopback-with-namespace"),
        pytest.param("ghcr.io/localhost", False, id="namespace-named-localhost"),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback




# -- Registry with a scripted skopeo -------------------------------------------------------------------
class ScriptedSkopeo:
    """Answers skopeo command lines by the reference they name; records them and the auth files given."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[int, bytes, str]] = {}
        self.first: list[tuple[int, bytes, str]] = []  # answered before `answers`, one per call
        self.calls: list[list[str]] = []
        self.auth_files: list[tuple[str, int, dict[str, Any]]] = []

    def answer(self, command: str, reference: str, stdout: bytes = b"", stderr: str = "", code: int = 0) -> None:
        self.answers[(command, reference)] = (code, stdout, stderr)

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess:
        self.calls.append(argv)
        for flag in ("--authfile", "--dest-authfile"):
            if flag in argv:
                path = Path(argv[argv.index(flag) + 1])
                self.auth_files.append((str(path), path.stat().st_mode & 0o777, json.loads(path.read_text())))
        key = (argv[1] if "--config" not in argv else "config", argv[-1])
        code, stdout, stderr = self.first.pop(0) if self.first else self.answers.get(key, (1, b"", 'level=fatal msg="manifest unknown"'))
        return subprocess.CompletedProcess(argv, code, stdout, stderr.encode())


CREDENTIALS = Credentials("ci", "s3cret-pw", "deploy.registry_user and $REGISTRY_PASSWORD")


@pytest.fixture
def skopeo() -> ScriptedSkopeo:
    return ScriptedSkopeo()


def registry_with(skopeo: ScriptedSkopeo, location: str = "127.0.0.1:5000/team", credentials: Credentials | None = None,
                  sleeps: list[float] | None = None) -> Registry:
    return Registry(location, credentials, run=skopeo, sleep=(sleeps if sleeps is not None else []).append)


def test_references_carry_the_namespace(skopeo: ScriptedSkopeo) -> None:
    registry = registry_with(skopeo, "ghcr.io/acme/apps")
    assert (registry.address, registry.namespace, registry.host) == ("ghcr.io", "acme/apps", "ghcr.io")
    assert registry.reference(REPO, TAG) == f"docker://ghcr.io/acme/apps/{REPO}:{TAG}"
    assert registry.reference(REPO, sha("a")) == f"docker://ghcr.io/acme/apps/{REPO}@{sha('a')}"
    assert registry.tls_verify


def test_loopback_without_certs_d_is_plain_http(skopeo: ScriptedSkopeo) -> None:
    assert not registry_with(skopeo, "127.0.0.1:1").tls_verify


@pytest.mark.parametrize(("code", "exists"), [pytest.param(0, True, id="present"), pytest.param(1, False, id="manifest-unknown")])
def test_has_tag(skopeo: ScriptedSkopeo, code: int, exists: bool) -> None:
    registry = registry_with(skopeo)
    skopeo.answer("inspect", registry.reference(REPO, TAG), json.dumps(OCI_DOC).encode(), code=code,
                  stderr="" if code == 0 else 'level=fatal msg="reading manifest: manifest unknown"')
    assert registry.has_tag(REPO, TAG) is exists
    assert "--no-creds" in skopeo.calls[0]


def test_manifest_resolves_an_index_to_linux_amd64_and_hashes_the_bytes(skopeo: ScriptedSkopeo) -> None:
    registry = registry_with(skopeo)
    body = json.dumps(OCI_DOC).encode()
    skopeo.answer("inspect", registry.reference(REPO, TAG), json.dumps(INDEX).encode())
    skopeo.answer("inspect", registry.reference(REPO, sha("a")), body)
    manifest = registry.manifest(REPO, TAG)
    assert manifest.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert (manifest.size, manifest.config, manifest.layers) == (len(body), EXPECTED.config, EXPECTED.layers)
    assert manifest.index_digest == "sha256:" + hashlib.sha256(json.dumps(INDEX).encode()).hexdigest()


@pytest.mark.parametrize("document", [INDEX, OCI_DOC], ids=["an-index", "an-image"])
def test_digest_is_of_what_the_tag_names(skopeo: ScriptedSkopeo, document: dict) -> None:
    """A multi-platform tag's digest is its index's (what build-deps reports and engines record), not a platform's."""
    registry = registry_with(skopeo)
    skopeo.answer("inspect", registry.reference(REPO, TAG), json.dumps(document).encode())
    assert registry.digest(REPO, TAG) == "sha256:" + hashlib.sha256(json.dumps(document).encode()).hexdigest()


def test_a_plain_manifest_has_no_index_digest(skopeo: ScriptedSkopeo) -> None:
    registry = registry_with(skopeo)
    skopeo.answer("inspect", registry.reference(REPO, TAG), json.dumps(OCI_DOC).encode())
    assert registry.manifest(REPO, TAG).index_digest is None


def test_config_is_read_by_manifest_digest(skopeo: ScriptedSkopeo) -> None:
    registry = registry_with(skopeo)
    skopeo.answer("config", registry.reference(REPO, sha("m")), b'{"rootfs": {"diff_ids": ["sha256:1"]}}')
    assert registry.config(REPO, EXPECTED)["rootfs"]["diff_ids"] == ["sha256:1"]


def test_tags_of_a_missing_repository_are_none(skopeo: ScriptedSkopeo) -> None:
    registry = registry_with(skopeo)
    assert registry.tags(REPO) == []
    skopeo.answer("list-tags", f"docker://{registry.name(REPO)}", b'{"Repository": "x", "Tags": ["b", "a"]}')
    assert registry.tags(REPO) == ["a", "b"]


def test_manifest_not_in_the_registry(skopeo: ScriptedSkopeo) -> None:
    with pytest.raises(DeliveryError, match=rf"^127.0.0.1:5000/team/{REPO}:{TAG} is not in the registry: build and push it first"):
        registry_with(skopeo).manifest(REPO, TAG)


def test_manifest_that_is_not_json(skopeo: ScriptedSkopeo) -> None:
    registry = registry_with(skopeo)
    skopeo.answer("inspect", registry.reference(REPO, TAG), b"<html>")
    with pytest.raises(DeliveryError, match=rf"sent something that is not JSON for manifest {REPO}:{TAG}$"):
        registry.manifest(REPO, TAG)


def test_credentials_reach_skopeo_in_a_private_file_only(skopeo: ScriptedSkopeo) -> None:
    registry = registry_with(skopeo, credentials=CREDENTIALS)
    skopeo.answer("inspect", registry.reference(REPO, TAG), json.dumps(OCI_DOC).encode())
    assert registry.has_tag(REPO, TAG)
    path, mode, document = skopeo.auth_files[0]
    assert mode == 0o600
    assert document == {"auths": {"127.0.0.1:5000": {"auth": "Y2k6czNjcmV0LXB3"}}}  # ci:s3cret-pw
    assert not Path(path).exists(), "the auth file outlived the call"
    assert not any("s3cret-pw" in arg for arg in skopeo.calls[0])


def test_refused_credentials_name_their_source_never_the_secret(skopeo: ScriptedSkopeo) -> None:
    registry = registry_with(skopeo, credentials=CREDENTIALS)
    skopeo.answer("inspect", registry.reference(REPO, TAG), code=1,
                  stderr='level=fatal msg="reading manifest: unauthorized: authentication required (s3cret-pw)"')
    with pytest.raises(DeliveryError) as caught:
        registry.manifest(REPO, TAG)
    message = str(caught.value)
    assert message.startswith("registry 127.0.0.1:5000/team refused the credentials from deploy.registry_user and $REGISTRY_PASSWORD")
    assert "s3cret-pw" not in message and "***" in message


def test_unreachable_registry(skopeo: ScriptedSkopeo) -> None:
    registry = registry_with(skopeo)
    skopeo.answer("list-tags", f"docker://{registry.name(REPO)}", code=1,
                  stderr='level=fatal msg="pinging container registry 127.0.0.1:5000: dial tcp: connect: connection refused"')
    with pytest.raises(RegistryUnreachable, match=r"^registry 127.0.0.1:5000 is unreachable .*: start it \(`invoke registry`\)"):
        registry.tags(REPO)


def test_skopeo_not_installed() -> None:
    def missing(argv: list[str], **_: Any) -> subprocess.CompletedProcess:
        raise FileNotFoundError(argv[0])

    with pytest.raises(DeliveryError, match=r"^skopeo is not installed: run `scripts/setup`"):
        Registry("127.0.0.1:5000", run=missing).has_tag(REPO, TAG)


def test_push_layout_copies_with_preserved_digests(skopeo: ScriptedSkopeo, tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text(json.dumps({"manifests": [{"mediaType": OCI_MANIFEST, "digest": sha("m"), "size": 1}]}))
    registry = registry_with(skopeo)
    skopeo.answer("copy", registry.reference(REPO, TAG))
    assert registry.push_layout(tmp_path, REPO, TAG) == sha("m")
    argv = skopeo.calls[0]
    assert argv[:2] == ["skopeo", "copy"] and "--preserve-digests" in argv
    assert argv[-2:] == [f"oci:{tmp_path}", f"docker://127.0.0.1:5000/team/{REPO}:{TAG}"]


def test_push_layout_of_a_multi_platform_index_copies_every_platform(skopeo: ScriptedSkopeo, tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text(json.dumps({"manifests": [{"mediaType": OCI_INDEX, "digest": sha("i"), "size": 1}]}))
    registry = registry_with(skopeo)
    skopeo.answer("copy", registry.reference(REPO, TAG))
    assert registry.push_layout(tmp_path, REPO, TAG) == sha("i")  # the index's digest: what the tag names
    argv = skopeo.calls[0]
    assert "--all" in argv and "--preserve-digests" in argv, argv


def test_push_layout_of_several_images_is_refused(skopeo: ScriptedSkopeo, tmp_path: Path) -> None:
    entry = {"mediaType": OCI_MANIFEST, "digest": sha("m"), "size": 1}
    (tmp_path / "index.json").write_text(json.dumps({"manifests": [entry, entry]}))
    with pytest.raises(DeliveryError, match=r"^the build produced 2 images, expected 1 \(an image or one multi-platform index\)$"):
        registry_with(skopeo).push_layout(tmp_path, REPO, TAG)
    assert skopeo.calls == []


UNAVAILABLE = (1, b"", 'level=fatal msg="reading manifest: received unexpected HTTP status: 503 Service Unavailable"')


def test_a_5xx_answer_is_retried_with_backoff(skopeo: ScriptedSkopeo) -> None:
    sleeps: list[float] = []
    registry = registry_with(skopeo, sleeps=sleeps)
    skopeo.first = [UNAVAILABLE, UNAVAILABLE]
    skopeo.answer("inspect", registry.reference(REPO, TAG), json.dumps(OCI_DOC).encode())
    assert registry.has_tag(REPO, TAG)
    assert (len(skopeo.calls), sleeps) == (3, [1.0, 2.0])


def test_a_registry_that_keeps_failing_is_one_line_after_the_retries(skopeo: ScriptedSkopeo) -> None:
    sleeps: list[float] = []
    registry = registry_with(skopeo, sleeps=sleeps)
    skopeo.first = [UNAVAILABLE] * 4
    with pytest.raises(DeliveryError, match=r"^registry 127.0.0.1:5000/team failed for .*503 Service Unavailable \(4 tries\): retry when the "
                                            r"registry is back$"):
        registry.has_tag(REPO, TAG)
    assert sleeps == [1.0, 2.0, 4.0]


def test_other_failures_are_not_retried_by_us(skopeo: ScriptedSkopeo) -> None:
    sleeps: list[float] = []
    registry = registry_with(skopeo, sleeps=sleeps)
    skopeo.first = [(1, b"", 'level=fatal msg="unauthorized: authentication required"')]
    with pytest.raises(DeliveryError, match="refused anonymous access"):
        registry.has_tag(REPO, TAG)
    assert (len(skopeo.calls), sleeps) == (1, [])

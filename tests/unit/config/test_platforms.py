"""Platforms: deploy.platforms parsing, a host's platform, picking an index's entry, the builder check,
a release's image per platform and the pull prediction per platform (no Docker)."""

import json
from pathlib import Path
from typing import Any

import pytest

from delivery.config.platforms import (
    EMULATION_HINT,
    engine_platform,
    index_platforms,
    missing_from_builder,
    parse_platforms,
    pick,
    platform_of,
)
from delivery.config.settings import load_config
from delivery.errors import DeliveryError
from delivery.images.builder import BuilderInfo, check_platforms
from delivery.registry.client import Blob, Manifest, layout_manifests
from delivery.release.pullreport import host_layers, plan_pull
from delivery.release.release import Release, Variant, resolve_release

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
UNKNOWN_PLATFORM = (
    "unknown platform {value!r} in deploy.platforms: use linux/amd64 and/or linux/arm64, comma-separated "
    "(default: linux/amd64,linux/arm64)"
)


def sha(char: str) -> str:
    return "sha256:" + char * 64


def entry(digest: str, os_name: str, arch: str, variant: str | None = None) -> dict[str, Any]:
    platform = {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": 500, "platform": platform}


INDEX = {"mediaType": OCI_INDEX, "manifests": [
    entry(sha("a"), "linux", "amd64"),
    entry(sha("b"), "linux", "arm64", "v8"),
    {**entry(sha("9"), "unknown", "unknown"), "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
]}


# -- deploy.platforms ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("linux/amd64,linux/arm64", ("linux/amd64", "linux/arm64"), id="the-default"),
        pytest.param("linux/arm64, linux/amd64", ("linux/arm64", "linux/amd64"), id="order-kept-spaces-ignored"),
        pytest.param("linux/amd64", ("linux/amd64",), id="amd64-only"),
        pytest.param(["linux/aarch64", "x86_64"], ("linux/arm64", "linux/amd64"), id="engine-names-as-a-list"),
        pytest.param("linux/arm64/v8", ("linux/arm64",), id="arm64-v8-is-arm64"),
    ],
)
def test_parse_platforms(value: Any, expected: tuple[str, ...]) -> None:
    assert parse_platforms(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("linux/s390x", UNKNOWN_PLATFORM.format(value="linux/s390x"), id="unsupported"),
        pytest.param("linux/amd64,windows/amd64", UNKNOWN_PLATFORM.format(value="windows/amd64"), id="one-of-two"),
        pytest.param("", "deploy.platforms is empty: list at least one of linux/amd64, linux/arm64", id="empty"),
        pytest.param("linux/amd64,linux/x86_64", "deploy.platforms lists linux/amd64 twice: list each platform once",
                     id="twice-under-two-names"),
    ],
)
def test_bad_platforms_are_one_clear_line(value: str, message: str) -> None:
    with pytest.raises(DeliveryError) as raised:
        parse_platforms(value)
    assert str(raised.value) == message
    with pytest.raises(DeliveryError) as from_config:  # as `invoke` reads INVOKE_DEPLOY_PLATFORMS
        load_config({"platforms": value})
    assert str(from_config.value) == message and "\n" not in message


def test_the_default_config_builds_both() -> None:
    assert load_config({}).platforms == ("linux/amd64", "linux/arm64")
    assert load_config({"platforms": "linux/amd64"}).platforms == ("linux/amd64",)


# -- a host's platform, an index's entries -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("os_type", "architecture", "platform"),
    [
        pytest.param("linux", "x86_64", "linux/amd64", id="x86_64"),
        pytest.param("linux", "aarch64", "linux/arm64", id="aarch64-graviton-ampere-pi"),
        pytest.param("linux", "armv7l", "linux/arm/v7", id="armv7-pi-32-bit"),
        pytest.param("linux", "arm64", "linux/arm64", id="an-image-config-s-name"),
        pytest.param(None, None, "linux/unknown", id="nothing-reported"),
    ],
)
def test_engine_platform(os_type: str | None, architecture: str | None, platform: str) -> None:
    assert engine_platform(os_type, architecture) == platform


def test_index_platforms_skip_attestations_and_name_arm64_v8_arm64() -> None:
    assert index_platforms(INDEX) == ["linux/amd64", "linux/arm64"]
    assert platform_of(INDEX["manifests"][1]) == "linux/arm64"
    assert platform_of({"digest": sha("s")}) == ""


@pytest.mark.parametrize(("platform", "digest"), [("linux/amd64", sha("a")), ("linux/arm64", sha("b"))])
def test_pick(platform: str, digest: str) -> None:
    assert pick(INDEX, platform)["digest"] == digest


def test_pick_names_what_the_index_has() -> None:
    arm64_only = {"manifests": [INDEX["manifests"][1]]}
    with pytest.raises(DeliveryError) as raised:
        pick(arm64_only, "linux/amd64")
    assert str(raised.value) == (
        "the image has no linux/amd64 variant (it has linux/arm64): build it for linux/amd64 "
        "(add it to deploy.platforms, then `invoke build-deps` and `invoke build-app`); nothing was changed"
    )


# -- the builder ---------------------------------------------------------------------------------------------
def builder(path: str, platforms: tuple[str, ...], store: str = "containerd") -> BuilderInfo:
    return BuilderInfo("default", "docker", "running", "bundled", "26.1.5", store, path, "linux/amd64", platforms)


EMULATING = ("linux/amd64", "linux/amd64/v2", "linux/arm64", "linux/riscv64")


def test_missing_from_builder() -> None:
    assert missing_from_builder(("linux/amd64", "linux/arm64"), EMULATING) == []
    assert missing_from_builder(("linux/amd64", "linux/arm64"), ("linux/amd64", "linux/amd64/v2")) == ["linux/arm64"]


@pytest.mark.parametrize(
    ("info", "wanted"),
    [
        pytest.param(builder("layout", EMULATING), ("linux/amd64", "linux/arm64"), id="layout-with-qemu-both"),
        pytest.param(builder("layout", ("linux/amd64",)), ("linux/amd64",), id="layout-amd64-only"),
        pytest.param(builder("engine", ("linux/amd64",), "overlay2"), ("linux/amd64",), id="classic-store-its-own-platform"),
    ],
)
def test_builders_that_can_build_the_platforms(info: BuilderInfo, wanted: tuple[str, ...]) -> None:
    check_platforms(info, wanted)


def test_a_builder_without_qemu_names_the_fix() -> None:
    with pytest.raises(DeliveryError) as raised:
        check_platforms(builder("layout", ("linux/amd64", "linux/amd64/v2")), ("linux/amd64", "linux/arm64"))
    assert str(raised.value) == (
        f"builder default cannot build linux/arm64 (it runs linux/amd64, linux/amd64/v2): {EMULATION_HINT}, "
        "or leave linux/arm64 out of deploy.platforms"
    )


@pytest.mark.parametrize("wanted", [("linux/amd64", "linux/arm64"), ("linux/arm64",)], ids=["both", "arm64-alone"])
def test_the_classic_store_builds_only_its_own_platform(wanted: tuple[str, ...]) -> None:
    with pytest.raises(DeliveryError) as raised:
        check_platforms(builder("engine", EMULATING, "overlay2"), wanted)
    message = str(raised.value)
    assert message.startswith(f"deploy.platforms is {','.join(wanted)}, but the classic image store of Engine 26.1.5 "
                              "holds one platform per image and builds only its own (linux/amd64): set deploy.platforms "
                              "to linux/amd64 (INVOKE_DEPLOY_PLATFORMS=linux/amd64), or for several platforms enable "
                              "the containerd image store"), message


# -- a release's image per platform ---------------------------------------------------------------------------
def manifest(char: str, layers: tuple[tuple[str, int], ...], index_digest: str | None = None) -> Manifest:
    return Manifest(sha(char), 700, Blob(sha(char.upper() if char.isalpha() else "c"), 1500),
                    tuple(Blob(d, s) for d, s in layers), index_digest)


# Release 1 and release 2 (a code-only change) per platform: base, deps, code layers. amd64 and
# arm64 share no layer (other binaries); the code layer of each release is the same on both.
LAYERS = {
    ("amd64", 1): ((sha("1"), 30_000_000), (sha("2"), 8_000_000), (sha("3"), 10_000)),
    ("amd64", 2): ((sha("1"), 30_000_000), (sha("2"), 8_000_000), (sha("4"), 10_100)),
    ("arm64", 1): ((sha("5"), 29_000_000), (sha("6"), 7_900_000), (sha("3"), 10_000)),
    ("arm64", 2): ((sha("5"), 29_000_000), (sha("6"), 7_900_000), (sha("4"), 10_100)),
}
DIFF_IDS = {key: tuple("sha256:" + "d" * 63 + d[-1] for d, _ in layers) for key, layers in LAYERS.items()}  # uncompressed


class FakeRegistry:
    """What resolve_release asks the registry: a tag's platforms, each platform's manifest and config."""

    def __init__(self, documents: dict[str, Any]):
        self.documents = documents  # tag -> ("index", {platform: (Manifest, config)}) or ("image", (Manifest, config))

    def tags(self, repository: str) -> list[str]:
        return list(self.documents)

    def index_platforms(self, repository: str, reference: str) -> list[str] | None:
        kind, value = self.documents[reference]
        return list(value) if kind == "index" else None

    def manifest(self, repository: str, reference: str, platform: str = "linux/amd64") -> Manifest:
        kind, value = self.documents[reference]
        return (value[platform] if kind == "index" else value)[0]

    def config(self, repository: str, found: Manifest) -> dict[str, Any]:
        for kind, value in self.documents.values():
            for candidate, config in (value.values() if kind == "index" else [value]):
                if candidate == found:
                    return config
        raise AssertionError(found)


def config_of(arch: str, release: int) -> dict[str, Any]:
    return {"os": "linux", "architecture": arch, "rootfs": {"type": "layers", "diff_ids": list(DIFF_IDS[(arch, release)])}}


def multi_release(release: int, tag: str) -> FakeRegistry:
    index = sha("i") if release == 1 else sha("j")
    return FakeRegistry({tag: ("index", {
        f"linux/{arch}": (manifest(char, LAYERS[(arch, release)], index), config_of(arch, release))
        for arch, char in (("amd64", "a" if release == 1 else "x"), ("arm64", "b" if release == 1 else "y"))
    })})


def test_a_multi_platform_release_has_an_image_per_platform() -> None:
    tag = "1.0.0-0123456789ab"
    release = resolve_release(multi_release(2, tag), load_config({}), tag)  # type: ignore[arg-type]
    assert (release.digest, release.platforms) == (sha("j"), ("linux/amd64", "linux/arm64"))
    amd64, arm64 = release.variant("linux/amd64", "h"), release.variant("linux/arm64", "pi")
    assert (amd64.manifest.digest, arm64.manifest.digest) == (sha("x"), sha("y"))
    assert arm64.diff_ids == DIFF_IDS[("arm64", 2)]
    # What the digest check accepts on a host: its platform's manifest, or the index the tag names.
    assert {amd64.manifest.digest, amd64.manifest.index_digest} == {sha("x"), sha("j")}


def test_a_single_image_release_has_the_platform_of_its_config() -> None:
    tag = "1.0.0-0123456789ab"
    registry = FakeRegistry({tag: ("image", (manifest("b", LAYERS[("arm64", 1)]), config_of("arm64", 1)))})
    release = resolve_release(registry, load_config({}), tag)  # type: ignore[arg-type]
    assert (release.digest, release.platforms) == (sha("b"), ("linux/arm64",))
    with pytest.raises(DeliveryError) as raised:
        release.variant("linux/amd64", "server-1")
    assert str(raised.value) == (
        "the image has no linux/amd64 variant for host server-1, which runs linux/amd64 "
        f"(localhost:5000/production-control:{tag} has linux/arm64): build it for linux/amd64 "
        "(add it to deploy.platforms, then `invoke build-deps` and `invoke build-app`); nothing was changed"
    )


@pytest.mark.parametrize("store", ["overlay2", "containerd"])
def test_the_pull_prediction_is_per_platform(store: str) -> None:
    """A host that runs release 1 of its platform pulls only the code layer and config of release 2;
    the other platform's release 1 on the host saves nothing but the code layer they share."""
    tag = "1.0.0-0123456789ab"
    release = resolve_release(multi_release(2, tag), load_config({}), tag)  # type: ignore[arg-type]
    for arch, other in (("arm64", "amd64"), ("amd64", "arm64")):
        variant: Variant = release.variant(f"linux/{arch}", "h")
        host = host_layers(store, [("sha256:old", [], list(DIFF_IDS[(arch, 1)]))])
        plan = plan_pull(release.image, variant.manifest, variant.diff_ids, host)
        assert (plan.pulled_layers, plan.pulled_digests) == (1, (sha("4"),))
        assert plan.pulled_bytes == 10_100 + variant.manifest.config.size
        foreign = host_layers(store, [("sha256:old", [], list(DIFF_IDS[(other, 1)]))])
        assert plan_pull(release.image, variant.manifest, variant.diff_ids, foreign).pulled_layers == 3


def test_release_platforms_keep_the_index_order() -> None:
    release = Release("t", "r/p:t", sha("i"), (Variant("linux/arm64", manifest("b", ()), ()),
                                                Variant("linux/amd64", manifest("a", ()), ())))
    assert release.platforms == ("linux/arm64", "linux/amd64")


# -- OCI layouts of one or several platforms --------------------------------------------------------------------
def write_blob(layout: Path, data: bytes) -> str:
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest.split(":")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def test_layout_manifests_of_a_single_image_and_of_an_index(tmp_path: Path) -> None:
    single = tmp_path / "single"
    single.mkdir()
    (single / "index.json").write_text(json.dumps({"manifests": [{"mediaType": OCI_MANIFEST, "digest": sha("m"), "size": 9}]}))
    assert [(p, d["digest"]) for p, d in layout_manifests(single)] == [("", sha("m"))]

    multi = tmp_path / "multi"
    nested = write_blob(multi, json.dumps(INDEX).encode())
    (multi / "index.json").write_text(json.dumps({"manifests": [{"mediaType": OCI_INDEX, "digest": nested, "size": 9}]}))
    found = [(p, d["digest"]) for p, d in layout_manifests(multi)]
    assert found == [("linux/amd64", sha("a")), ("linux/arm64", sha("b"))]  # not the attestation

"""Platforms: deploy.platforms parsing, a host's platform, picking an index's entry, the builder check and the
platforms of an OCI layout (no Docker). A release's image per platform: release/test_release.py."""

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
from delivery.registry.client import layout_manifests

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

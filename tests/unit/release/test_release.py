"""A release's image per platform: resolved from the registry (an index, or one image and its config's platform),
the image a host of each platform pulls, and what that pull would download."""

from typing import Any

import pytest

from delivery.config.settings import load_config
from delivery.errors import DeliveryError
from delivery.registry.client import Blob, Manifest
from delivery.release.pullreport import host_layers, plan_pull
from delivery.release.release import Release, Variant, resolve_release


def sha(char: str) -> str:
    return "sha256:" + char * 64


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

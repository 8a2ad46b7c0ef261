"""The deps image's Debian packages never go back (delivery/supply/refresh.py): pure parts and the registry reads, faked."""

from datetime import UTC, datetime

import pytest

from delivery.errors import DeliveryError, OlderDebianPackages
from delivery.images.base import BaseImage
from delivery.registry.client import Blob, Manifest
from delivery.supply.refresh import debian_against, debian_downgrades, debian_moved, followed, previous_for_base, refuse_older
from delivery.supply.sbom import DebianPackage, make_sbom, sbom_tag

BASE = BaseImage("production-control/python-base:bookworm", "sha256:" + "a" * 64)
OTHER_BASE = BaseImage("python:3.12.12-slim-bookworm", "sha256:" + "b" * 64)
HASH = "21ed0a75e205"


# -- Debian's version ordering --------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new"), [
    ("1.5.4+dfsg2-5+deb12u1", "1.5.4+dfsg2-5"),  # a security update (+debNuM) reverted: the case measured on the test bed
    ("3.0.17-1~deb12u2", "3.0.17-1~deb12u1"),  # a backport revision (~) reverted
    ("3.0.17-1~deb12u1", "3.0.15-1~deb12u1"),  # upstream version
    ("1:2.38.1-5+deb12u3", "2.39.0-1"),  # an epoch outweighs any upstream version
    ("7.88.1-10+deb12u8", "7.88.1-10+deb12u7"),
    ("1.0", "1.0~rc1"),  # ~ sorts before everything, even the end of the string
])
def test_a_lower_debian_version_is_a_downgrade(old: str, new: str) -> None:
    assert debian_downgrades({"pkg": old}, {"pkg": new}) == [f"pkg {old} -> {new}"]
    assert debian_downgrades({"pkg": new}, {"pkg": old}) == []  # the other way round is an update


def test_updates_additions_removals_and_equal_versions_are_no_downgrades() -> None:
    old = {"libzstd1": "1.5.4+dfsg2-5", "curl": "7.88.1-10+deb12u8", "gone": "1.0", "same": "2:1.0-1"}
    new = {"libzstd1": "1.5.4+dfsg2-5+deb12u1", "curl": "7.88.1-10+deb12u8", "added": "0.1", "same": "2:1.0-1"}
    assert debian_downgrades(old, new) == []
    assert debian_downgrades({}, new) == [] and debian_downgrades(old, {}) == []


def test_a_version_that_is_no_debian_version_is_never_a_downgrade() -> None:
    assert debian_downgrades({"pkg": "1.0 beta"}, {"pkg": "0.9-1"}) == []
    assert debian_downgrades({"pkg": "1.0-1"}, {"pkg": ""}) == []


def test_only_the_packages_that_went_back_are_named_in_name_order() -> None:
    old = {"zlib1g": "1:1.2.13.dfsg-1", "libzstd1": "1.5.4+dfsg2-5+deb12u1", "curl": "7.88.1-10+deb12u7"}
    new = {"zlib1g": "1:1.2.11.dfsg-2", "libzstd1": "1.5.4+dfsg2-5", "curl": "7.88.1-10+deb12u8"}
    assert debian_downgrades(old, new) == ["libzstd1 1.5.4+dfsg2-5+deb12u1 -> 1.5.4+dfsg2-5",
                                           "zlib1g 1:1.2.13.dfsg-1 -> 1:1.2.11.dfsg-2"]


# -- the decision and its wording ----------------------------------------------------------------------------
def comparison(changes: list[str], downgrades: list[str], previous: str = f"deps-1.0.0-{HASH}") -> dict:
    return {"compared_with": previous, "debian_changes": changes, "debian_downgrades": downgrades}


REVERTED = "libzstd1 1.5.4+dfsg2-5+deb12u1 -> 1.5.4+dfsg2-5"


def test_a_cached_build_with_older_packages_is_refused_naming_the_stale_cache() -> None:
    """build_deps catches this one and builds again without cache (the docker test runs that path)."""
    with pytest.raises(OlderDebianPackages) as raised:
        refuse_older(comparison([REVERTED], [REVERTED]), cached=True)
    message = str(raised.value)
    assert message == (f"the deps image built from this builder's cache has older Debian packages than deps-1.0.0-{HASH} "
                       f"({REVERTED}): its cache predates them")
    assert isinstance(raised.value, DeliveryError) and "\n" not in message


def test_an_uncached_build_with_older_packages_is_refused_too_pointing_at_the_archive() -> None:
    with pytest.raises(DeliveryError, match=r"older Debian packages than deps-1\.0\.0-.*Debian archive this build used") as raised:
        refuse_older(comparison([REVERTED], [REVERTED]), cached=False)
    assert "--no-cache" not in str(raised.value)  # it had none: that advice would not help


def test_a_long_list_of_downgrades_stays_one_short_line() -> None:
    many = [f"lib{i} 1.0-1+deb12u1 -> 1.0-1" for i in range(40)]
    with pytest.raises(DeliveryError) as raised:
        refuse_older(comparison(many, many), cached=True)
    assert "lib4 1.0-1+deb12u1 -> 1.0-1 and 35 more" in str(raised.value) and "lib5 " not in str(raised.value)


def test_newer_added_or_removed_packages_pass_and_are_said_in_one_line() -> None:
    changes = ["gone 1.0 -> (none)", "libzstd1 1.5.4+dfsg2-5 -> 1.5.4+dfsg2-5+deb12u1", "new (none) -> 2"]
    refuse_older(comparison(changes, []), cached=True)  # no error
    line = debian_moved(comparison(changes, []))
    assert line == (f"the OS layer changed since deps-1.0.0-{HASH}: 3 Debian package(s), gone 1.0 -> (none), "
                    "libzstd1 1.5.4+dfsg2-5 -> 1.5.4+dfsg2-5+deb12u1, new (none) -> 2 "
                    "(a server on the classic overlay2 store re-pulls every layer above it)")


def test_identical_packages_say_nothing() -> None:
    refuse_older(comparison([], []), cached=True)
    assert debian_moved(comparison([], [])) is None


# -- which image a build follows, and its SBOM's packages (registry faked) ----------------------------------
def sbom_text(tag: str, base: BaseImage, debian: dict[str, str], at: datetime) -> str:
    packages = [DebianPackage(name, version, "amd64", None) for name, version in debian.items()]
    return make_sbom(f"localhost:5000/production-control-deps:{tag}", "sha256:" + "d" * 64, base, [], packages,
                     {"ID": "debian", "VERSION_ID": "12"}, at)


class SbomRegistry:
    """Deps tags and their SBOMs, read as delivery/supply/sbom.py's fetch_sbom reads them."""

    def __init__(self, sboms: dict[str, str], images: list[str] = ()):
        self.sboms = sboms
        self.tag_list = sorted([*images, *sboms, *(sbom_tag(tag) for tag in sboms)])

    def has_tag(self, repository: str, tag: str) -> bool:
        return tag in self.tag_list

    def manifest(self, repository: str, reference: str) -> Manifest:
        return Manifest("sha256:s", 1, Blob("sha256:e", 2), (Blob("sha256:" + reference, 3),))

    def blob(self, repository: str, reference: str, digest: str) -> bytes:
        return self.sboms[reference.removesuffix(".sbom")].encode()


def day(n: int) -> datetime:
    return datetime(2026, 11, n, tzinfo=UTC)


def test_a_new_content_hash_follows_the_image_built_last_on_its_base_name() -> None:
    registry = SbomRegistry({
        "deps-1.0.0-aaaaaaaaaaaa": sbom_text("deps-1.0.0-aaaaaaaaaaaa", BASE, {}, day(1)),
        "deps-1.0.0-bbbbbbbbbbbb": sbom_text("deps-1.0.0-bbbbbbbbbbbb", BASE, {}, day(3)),
        "deps-1.0.0-cccccccccccc": sbom_text("deps-1.0.0-cccccccccccc", OTHER_BASE, {}, day(9)),  # another base name
    }, images=["deps-1.0.0-dddddddddddd"])  # an image without an SBOM (before SBOMs): never followed
    assert previous_for_base(registry, registry.tag_list, BASE.name) == "deps-1.0.0-bbbbbbbbbbbb"
    assert followed(registry, registry.tag_list, HASH, None, BASE.name) == "deps-1.0.0-bbbbbbbbbbbb"
    assert followed(registry, registry.tag_list, HASH, "1.0.1", BASE.name) == f"deps-1.0.1-{HASH}"  # --force, a refresh
    assert previous_for_base(registry, registry.tag_list, "never-built-on:1") is None


def test_the_comparison_reads_the_followed_image_sbom() -> None:
    previous = "deps-1.0.0-bbbbbbbbbbbb"
    registry = SbomRegistry({previous: sbom_text(previous, BASE, {"libzstd1": "1.5.4+dfsg2-5+deb12u1", "curl": "7.88.1-10+deb12u8"}, day(3))})
    new = sbom_text(f"deps-1.0.0-{HASH}", BASE, {"libzstd1": "1.5.4+dfsg2-5", "curl": "7.88.1-10+deb12u8"}, day(4))
    assert debian_against(registry, previous, new) == {
        "compared_with": previous, "debian_changes": [REVERTED], "debian_downgrades": [REVERTED]}
    # A followed image without an SBOM: nothing known to compare, nothing refused.
    assert debian_against(SbomRegistry({}), previous, new) == {
        "compared_with": previous, "debian_changes": [], "debian_downgrades": []}

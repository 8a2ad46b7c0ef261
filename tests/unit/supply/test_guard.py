"""The step between a deps build and its push (delivery/supply/): the Debian-package guard, and the SBOM made from
the built image and pushed beside it, with the registry and the SBOM tool faked."""

import json
from pathlib import Path
from typing import Any

import pytest

from delivery.images import build
from delivery.images.base import BaseImage
from delivery.reporting import Recorded
from delivery.supply import refresh, sbom

PREVIOUS = "deps-1.0.0-abcdef123456"
IMAGE = f"localhost:5000/production-control-deps:{PREVIOUS.replace('1.0.0', '1.0.1')}"
BASE = BaseImage("python:3.12-slim-bookworm", "sha256:" + "b" * 64)


def comparison(downgrades: list[str], changes: list[str]) -> Any:
    return lambda registry, previous, text: {"compared_with": previous, "debian_changes": changes, "debian_downgrades": downgrades}


def test_the_guard_has_nothing_to_compare_without_an_image_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refresh, "debian_against", lambda *args: pytest.fail("nothing to compare with"))
    report = Recorded()
    assert refresh.guard(None, None, "{}", cached=True, report=report) == {}  # type: ignore[arg-type]
    assert report.lines == []


def test_the_guard_says_which_debian_packages_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refresh, "debian_against", comparison([], ["libssl3 3.0.1 -> 3.0.2"]))
    report = Recorded()
    found = refresh.guard(None, PREVIOUS, "{}", cached=True, report=report)  # type: ignore[arg-type]
    assert found["debian_changes"] == ["libssl3 3.0.1 -> 3.0.2"]
    assert report.lines == [f"the OS layer changed since {PREVIOUS}: 1 Debian package(s), libssl3 3.0.1 -> 3.0.2 "
                            "(a server on the classic overlay2 store re-pulls every layer above it)"]


@pytest.mark.parametrize(("cached", "says"), [(True, "from this builder's cache"), (False, "without cache")])
def test_the_guard_refuses_older_debian_packages(monkeypatch: pytest.MonkeyPatch, cached: bool, says: str) -> None:
    monkeypatch.setattr(refresh, "debian_against", comparison(["libc6 2.36-9+deb12u9 -> 2.36-9+deb12u8"], []))
    with pytest.raises(refresh.OlderDebianPackages, match=says):
        refresh.guard(None, PREVIOUS, "{}", cached=cached, report=Recorded())  # type: ignore[arg-type]


def built(tmp_path: Path) -> build.Built:
    layout = tmp_path / "layout"
    layout.mkdir()
    descriptor = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "c" * 64, "size": 7}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return build.Built(build.BuildPlan("deps", IMAGE, tmp_path, tmp_path / "Dockerfile"), "layout", layout)


def test_the_sbom_is_made_from_the_built_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Path, str]] = []
    monkeypatch.setattr(sbom, "sbom_for_layout", lambda layout, image, base, lock: seen.append((layout, image)) or "{}")
    report = Recorded()
    image = built(tmp_path)
    assert sbom.make_for(image, BASE, "fastapi==1.0\n", report) == "{}"
    assert seen == [(tmp_path / "layout", IMAGE)]
    assert report.lines == ["making the SBOM (CycloneDX: the locked Python packages, the image's Debian packages)"]


def test_an_engine_build_without_export_has_no_sbom(tmp_path: Path) -> None:
    image = build.Built(build.BuildPlan("deps", IMAGE, tmp_path, tmp_path / "Dockerfile"), "engine", None)
    with pytest.raises(sbom.DeliveryError, match="without an OCI layout"):
        sbom.make_for(image, BASE, "", Recorded())


def test_the_sbom_is_pushed_beside_the_image_with_it_as_subject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pushed: list[tuple[str, str, dict[str, Any]]] = []
    monkeypatch.setattr(sbom, "push_sbom", lambda registry, repository, tag, text, subject: pushed.append((repository, tag, subject)))
    report = Recorded()
    image = built(tmp_path)
    sbom.publish_for(None, image, "{}", report)  # type: ignore[arg-type]
    assert pushed == [("production-control-deps", image.tag, image.descriptor())]
    assert report.lines == [f"pushed the SBOM as localhost:5000/production-control-deps:{image.tag}.sbom"]

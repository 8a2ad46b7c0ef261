"""The SBOM's inputs and document (pure): dpkg status, locked packages, the CycloneDX document."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from delivery.errors import DeliveryError
from delivery.images.base import BaseImage
from delivery.supply.sbom import locked_packages, make_sbom, parse_dpkg_status, sbom_packages

ROOT = Path(__file__).resolve().parents[3]
BASE = BaseImage("python:3.12.12-slim-bookworm", "sha256:" + "a" * 64)
HASH = "21ed0a75e205"


# -- SBOM ------------------------------------------------------------------------------------------------
STATUS = """\
Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.15-1~deb12u1

Package: curl
Status: install ok installed
Architecture: amd64
Version: 7.88.1-10+deb12u8
Description: a tool
 with a continuation: line

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
"""

def test_dpkg_status_gives_installed_packages_only() -> None:
    assert [(p.name, p.version, p.source) for p in parse_dpkg_status(STATUS)] == [
        ("curl", "7.88.1-10+deb12u8", None), ("libssl3", "3.0.15-1~deb12u1", "openssl")]


def test_locked_packages_are_every_entry_of_the_lock_with_its_version_and_hashes() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    packages = locked_packages(lock)
    pinned = [line.split(" ")[0] for line in lock.splitlines() if "==" in line and not line.startswith((" ", "#"))]
    assert [f"{p.name}=={p.version}" for p in packages] == pinned
    assert all(p.hashes and all(len(h) == 64 for h in p.hashes) for p in packages)


def test_an_unpinned_lock_entry_is_refused() -> None:
    with pytest.raises(DeliveryError, match="not pinned"):
        locked_packages("fastapi>=0.1\n")


def test_the_sbom_is_valid_cyclonedx_listing_lock_and_debian_packages() -> None:
    python = locked_packages((ROOT / "requirements.lock").read_text())
    text = make_sbom("localhost:5000/production-control-deps:deps-1.0.0-" + HASH, "sha256:" + "d" * 64, BASE, python,
                     parse_dpkg_status(STATUS), {"ID": "debian", "VERSION_ID": "12"}, datetime(2026, 11, 29, tzinfo=UTC))
    document = json.loads(text)
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    assert document["metadata"]["timestamp"].startswith("2026-11-29T00:00:00")
    packages = sbom_packages(document)
    assert packages["pypi"] == {p.name: p.version for p in python}
    assert packages["deb"] == {"curl": "7.88.1-10+deb12u8", "libssl3": "3.0.15-1~deb12u1"}
    purls = {c["purl"] for c in document["components"] if "purl" in c}
    assert "pkg:deb/debian/libssl3@3.0.15-1~deb12u1?arch=amd64&distro=debian-12" in purls

"""Refresh versions and predictions (pure, a fake registry): the current deps image, the next patch, package changes, freshness."""

import json
from datetime import UTC, datetime

from delivery.images.base import BaseImage
from delivery.registry.client import Blob, Manifest
from delivery.release.pullreport import chain_ids
from delivery.supply.refresh import current_version, deps_freshness, package_changes, predict_refresh, refresh_version

BASE = BaseImage("python:3.12.12-slim-bookworm", "sha256:" + "a" * 64)
HASH = "21ed0a75e205"


# -- refresh ------------------------------------------------------------------------------------------------
TAGS = [f"deps-1.0.0-{HASH}", f"deps-1.0.0-{HASH}.sbom", f"deps-1.0.1-{HASH}", "deps-1.0.0-000000000000", "latest",
        f"deps-0.9.0-{HASH}"]


def test_the_current_deps_image_is_the_highest_refresh_of_its_hash() -> None:
    assert current_version(TAGS, HASH, "1.0.0") == "1.0.1"
    assert current_version(TAGS, HASH, "1.1.0") is None  # a bumped project version starts again
    assert current_version(TAGS, "ffffffffffff", "1.0.0") is None


def test_a_refresh_that_differs_is_the_next_patch() -> None:
    assert refresh_version(TAGS, HASH, "1.0.0") == "1.0.2"
    assert refresh_version([], HASH, "1.0.0") == "1.0.0"


def test_package_changes() -> None:
    assert package_changes({"curl": "1", "libssl3": "3.0.15", "gone": "1"}, {"curl": "1", "libssl3": "3.0.17", "new": "2"}) == [
        "gone 1 -> (none)", "libssl3 3.0.15 -> 3.0.17", "new (none) -> 2"]


def test_a_refresh_that_changes_the_os_layer_costs_it_on_containerd_and_everything_above_on_overlay2() -> None:
    old = ["sha256:base", "sha256:os-old", "sha256:venv", "sha256:pkgs"]
    new = ["sha256:base", "sha256:os-new", "sha256:venv", "sha256:pkgs"]
    manifest = Manifest("sha256:m", 500, Blob("sha256:c", 100), tuple(Blob(f"sha256:blob{i}", 1000 * (i + 1)) for i in range(4)))
    by_store = {p["store"]: p for p in predict_refresh("sha256:oldconfig", old, "deps", manifest, new)}
    assert (by_store["containerd"]["pulled_layers"], by_store["containerd"]["pulled_bytes"]) == (1, 2000 + 100)
    assert (by_store["overlay2"]["pulled_layers"], by_store["overlay2"]["pulled_bytes"]) == (3, 2000 + 3000 + 4000 + 100)
    assert chain_ids(old)[0] == chain_ids(new)[0]


class FakeRegistry:
    """The registry reads deps_freshness makes (tags, and the SBOM through has_tag/manifest/blob)."""

    def __init__(self, tags: list[str], sbom: dict | None):
        self._tags, self._sbom = tags, sbom

    def tags(self, repository: str) -> list[str]:
        return self._tags

    def has_tag(self, repository: str, tag: str) -> bool:
        return self._sbom is not None and tag in self._tags

    def manifest(self, repository: str, reference: str) -> Manifest:
        return Manifest("sha256:s", 1, Blob("sha256:e", 2), (Blob("sha256:sbom", 3),))

    def blob(self, repository: str, reference: str, digest: str) -> bytes:
        assert digest == "sha256:sbom"  # the artifact's layer, not its (empty) config
        return json.dumps(self._sbom or {}).encode()


def test_freshness_tells_base_age_and_a_newer_refresh() -> None:
    labels = {"production-control.base.name": BASE.name, "production-control.base.digest": BASE.digest}
    env = [f"PRODUCTION_CONTROL_DEPS_TAG=deps-1.0.0-{HASH}", "PATH=/opt/venv/bin"]
    registry = FakeRegistry(TAGS, {"metadata": {"timestamp": "2026-11-19T00:00:00+00:00"}})
    fresh = deps_freshness(labels, env, registry, now=datetime(2026, 11, 29, tzinfo=UTC))
    assert fresh == {"deps_tag": f"deps-1.0.0-{HASH}", "base_name": BASE.name, "base_digest": BASE.digest,
                     "built_at": "2026-11-19T00:00:00+00:00", "age_days": 10.0, "newer": f"deps-1.0.1-{HASH}"}
    newest = deps_freshness(labels, [f"PRODUCTION_CONTROL_DEPS_TAG=deps-1.0.1-{HASH}"], registry)
    assert newest["newer"] is None
    old_image = deps_freshness({}, ["PRODUCTION_CONTROL_DEPS_TAG=dev"], FakeRegistry([], None))
    assert old_image["base_digest"] is None and old_image["age_days"] is None


def test_status_still_answers_when_the_deps_freshness_cannot_be_read() -> None:
    from types import SimpleNamespace

    from delivery.deploy.compose.deployer import with_freshness
    from delivery.errors import RegistryUnreachable
    from delivery.ui.text import format_freshness

    class Registry:
        def tags(self, repository: str) -> list[str]:
            raise RegistryUnreachable("registry localhost:5000 is unreachable (refused): start it")

        def has_tag(self, repository: str, tag: str) -> bool:
            return self.tags(repository) == []

    image = SimpleNamespace(config=SimpleNamespace(labels={}, env=[f"PRODUCTION_CONTROL_DEPS_TAG=deps-1.0.0-{HASH}"]))
    target = SimpleNamespace(docker=SimpleNamespace(image=SimpleNamespace(inspect=lambda ref: image)))
    entry = with_freshness(target, {"running": {"image": "r/i:t"}}, Registry())
    assert entry["deps"] == {"error": "registry localhost:5000 is unreachable (refused): start it"}
    assert format_freshness(entry["deps"]) == "  deps      unknown (registry localhost:5000 is unreachable (refused): start it)"
    assert with_freshness(target, {"running": None}, Registry()) == {"running": None}

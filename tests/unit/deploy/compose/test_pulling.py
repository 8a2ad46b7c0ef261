"""What to do after a failed pull, and a rollback's image put back (pulled again only if it is the very image)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from delivery.deploy.compose.pulling import pull_hint, recorded_pin, restore_image
from delivery.errors import DeliveryError
from delivery.hosts.history import HistoryEntry
from delivery.reporting import Recorded

IMAGE_ID = "sha256:" + "c" * 64
OTHER_ID = "sha256:" + "d" * 64
DIGEST = "sha256:" + "a" * 64
IMAGE = "localhost:5000/production-control:1.0.0-abcdef123456"
ENTRY = HistoryEntry("20260101T000000000000Z", "deploy", "1.0.0-abcdef123456", IMAGE_ID)


@pytest.mark.parametrize(
    ("reason", "todo"),
    [
        pytest.param("write /var/lib/docker: no space left on device", "free disk space", id="disk"),
        pytest.param("unauthorized: authentication required", "log the docker CLI in", id="auth"),
        pytest.param("Cannot connect to the Docker daemon at unix:///var/run/docker.sock", "is the engine running?", id="engine"),
        pytest.param("it did not finish within deploy.pull_timeout (5s)", "raise deploy.pull_timeout", id="timeout"),
        pytest.param("manifest unknown", "retry when the registry is back", id="other"),
    ],
)
def test_a_failed_pull_says_what_to_do(reason: str, todo: str) -> None:
    hint = pull_hint(reason)
    assert hint.startswith("the running release is untouched; ") and todo in hint


class Images:
    def __init__(self, present: bool, registry_has: str) -> None:
        self.present, self.registry_has, self.events = present, registry_has, list[str]()

    def exists(self, ref: str) -> bool:
        return self.present

    def pull(self, ref: str, quiet: bool) -> None:
        self.events.append(f"pull {ref}")

    def inspect(self, ref: str) -> Any:
        return SimpleNamespace(id=self.registry_has, repo_digests=[f"localhost:5000/production-control@{DIGEST}"])

    def tag(self, image_id: str, ref: str) -> None:
        self.events.append(f"tag {image_id[:12]} {ref}")


def _target(images: Images) -> Any:
    return SimpleNamespace(docker=SimpleNamespace(image=images), host=SimpleNamespace(label="h1"))


def test_an_image_still_on_the_host_is_only_tagged_again() -> None:
    images, said = Images(True, IMAGE_ID), Recorded()
    assert restore_image(_target(images), ENTRY, IMAGE, said) is False
    assert images.events == [f"tag {IMAGE_ID[:12]} {IMAGE}"] and said.lines == []


def test_a_pruned_image_is_pulled_again_when_it_is_the_very_image() -> None:
    images, said = Images(False, IMAGE_ID), Recorded()
    assert restore_image(_target(images), ENTRY, IMAGE, said) is True
    assert images.events == [f"pull {IMAGE}", f"tag {IMAGE_ID[:12]} {IMAGE}"]
    assert said.lines == [f"h1: the image of 1.0.0-abcdef123456 is no longer on the host (pruned?): pulling {IMAGE}"]


def test_a_pruned_image_the_registry_has_another_of_changes_nothing() -> None:
    images = Images(False, OTHER_ID)
    with pytest.raises(DeliveryError, match=r"is not the image 1.0.0-abcdef123456 ran on h1 .*nothing was changed; deploy a release instead"):
        restore_image(_target(images), ENTRY, IMAGE, Recorded())
    assert images.events == [f"pull {IMAGE}"]


def test_a_rollback_is_pinned_to_a_digest_the_engine_recorded() -> None:
    assert recorded_pin(_target(Images(True, IMAGE_ID)), "1.0.0-abcdef123456", IMAGE_ID, IMAGE) == f"1.0.0-abcdef123456@{DIGEST}"

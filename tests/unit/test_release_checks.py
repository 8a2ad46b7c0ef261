"""Every container a deploy or rollback starts runs the release it was meant to: its image's digest
(deploy: what the registry says the tag names) or ID (rollback: what the deploy history recorded)."""

from types import SimpleNamespace
from typing import Any

import pytest

from delivery import deploy
from delivery.deploy import CronFailed, image_mismatch, replace_cron

RELEASE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
IMAGE_ID = "sha256:" + "c" * 64


@pytest.mark.parametrize(
    ("accepted", "image_id", "repo_digests", "ok"),
    [
        pytest.param(frozenset({RELEASE}), IMAGE_ID, [RELEASE], True, id="deploy-digest-matches"),
        pytest.param(frozenset({RELEASE, OTHER}), IMAGE_ID, [OTHER], True, id="index-or-manifest-digest"),
        pytest.param(frozenset({RELEASE}), IMAGE_ID, [OTHER], False, id="deploy-another-image"),
        pytest.param(frozenset({IMAGE_ID}), IMAGE_ID, [], True, id="rollback-recorded-image-id"),
        pytest.param(frozenset({IMAGE_ID}), OTHER, [RELEASE], False, id="rollback-image-retagged-since"),
        pytest.param(frozenset(), OTHER, [], True, id="nothing-to-check"),
    ],
)
def test_image_mismatch(accepted: frozenset[str], image_id: str, repo_digests: list[str], ok: bool) -> None:
    why = image_mismatch(accepted, image_id, repo_digests)
    assert (why is None) is ok
    if why:
        assert why.startswith("it runs image") and "\n" not in why and sorted(accepted)[0] in why


def test_image_mismatch_names_the_image_id_when_it_has_no_repo_digest() -> None:
    assert image_mismatch(frozenset({IMAGE_ID}), OTHER, []) == f"it runs image {OTHER}, not {IMAGE_ID}"


class FakeTarget:
    """Just enough of a Target for replace_cron: cron starts from `runs`, which is healthy."""

    def __init__(self, runs: str) -> None:
        self.host = SimpleNamespace(label="h1")
        self.config = SimpleNamespace(health_timeout=1)
        self.docker = None
        self.runs = runs
        self.started: list[str | None] = []


def fake_cron(monkeypatch: pytest.MonkeyPatch, target: FakeTarget) -> None:
    def up(target_: Any, service: str, tags_: dict[str, str | None], say: Any) -> Any:
        target_.started.append(tags_["cron"])
        return SimpleNamespace(id="c1", image=target_.runs)

    monkeypatch.setattr(deploy, "_up", up)
    monkeypatch.setattr(deploy, "wait_healthy", lambda *args: (True, "healthy"))
    monkeypatch.setattr(deploy, "image_digests", lambda docker, image: {RELEASE: [RELEASE]}.get(image, []))


def test_cron_of_another_image_is_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    target = FakeTarget(runs=OTHER)
    fake_cron(monkeypatch, target)
    with pytest.raises(CronFailed, match=f"cron of 2.0.0-abcdef123456 failed on h1: it runs image {OTHER}, not {RELEASE}; .*put back on 1.0.0"):
        replace_cron(target, {"cron": "1.0.0-abcdef123456"}, "2.0.0-abcdef123456", "1.0.0-abcdef123456", lambda _: None,
                     digests=frozenset({RELEASE}))
    assert target.started == ["2.0.0-abcdef123456", "1.0.0-abcdef123456"]


def test_cron_of_the_release_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    target = FakeTarget(runs=RELEASE)
    fake_cron(monkeypatch, target)
    replace_cron(target, {"cron": None}, "2.0.0-abcdef123456", None, lambda _: None, digests=frozenset({RELEASE}))
    assert target.started == ["2.0.0-abcdef123456"]


def test_rollback_starts_only_the_recorded_image(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    from delivery.history import HistoryEntry

    entry = HistoryEntry("20260101T000000000000Z", "deploy", "1.0.0-abcdef123456", IMAGE_ID)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(deploy, "deploy_lock", lambda *args: contextlib.nullcontext())
    monkeypatch.setattr(deploy, "survey", lambda target: SimpleNamespace(live_tag="2.0.0-abcdef123456"))
    monkeypatch.setattr(deploy, "history", lambda docker, project: [entry])
    monkeypatch.setattr(deploy, "rollback_target", lambda entries, current, to: entry)

    def handover(target: Any, site: Any, tag: str, report: Any, say: Any, digests: frozenset[str] = frozenset(), **_: Any) -> Any:
        seen["digests"] = digests
        raise deploy.HandoverFailed(f"{tag} failed on h1: {image_mismatch(digests, OTHER, [])}")

    monkeypatch.setattr(deploy, "handover", handover)
    docker = SimpleNamespace(image=SimpleNamespace(tag=lambda *args: None, exists=lambda ref: True))
    target = SimpleNamespace(docker=docker, host=SimpleNamespace(label="h1"), host_arg="local",
                             config=SimpleNamespace(compose_project="p", lock_wait=0, registry="localhost:5000"))
    report = deploy.rollback(target, lambda _: None)
    assert seen["digests"] == frozenset({IMAGE_ID})
    assert report.error == (f"rollback to 1.0.0-abcdef123456 on h1 failed: 1.0.0-abcdef123456 failed on h1: it runs image {OTHER}, "
                            f"not {IMAGE_ID}; 2.0.0-abcdef123456 is still serving")

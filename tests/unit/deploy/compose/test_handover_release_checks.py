"""Every container a deploy or rollback starts runs the release it was meant to: its image's digest
(deploy: what the registry says the tag names) or ID (rollback: what the deploy history recorded). Cron's own
check: test_cron.py."""

from types import SimpleNamespace
from typing import Any

import pytest

from delivery.config.settings import load_config
from delivery.deploy.compose import handover as deploy
from delivery.deploy.compose import pulling
from delivery.deploy.compose.health import image_mismatch
from delivery.errors import DeliveryError, HandoverFailed
from delivery.hosts import site as sites
from delivery.hosts.target import compose_env
from delivery.reporting import Recorded

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


def test_rollback_starts_only_the_recorded_image(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    from delivery.hosts.history import HistoryEntry

    entry = HistoryEntry("20260101T000000000000Z", "deploy", "1.0.0-abcdef123456", IMAGE_ID)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(deploy, "deploy_lock", lambda *args: contextlib.nullcontext())
    monkeypatch.setattr(deploy, "site_of", lambda target: SimpleNamespace(live_tag="2.0.0-abcdef123456"))
    monkeypatch.setattr(deploy, "history", lambda docker, project: [entry])
    monkeypatch.setattr(deploy, "rollback_target", lambda entries, current, to: entry)

    def handover(target: Any, site: Any, tag: str, report: Any, reporter: Any, digests: frozenset[str] = frozenset(),
                 pin: str | None = None, **_: Any) -> Any:
        seen["digests"], seen["pin"] = digests, pin
        raise HandoverFailed(f"{tag} failed on h1: {image_mismatch(digests, OTHER, [])}")

    monkeypatch.setattr(deploy, "handover", handover)
    recorded = SimpleNamespace(repo_digests=[f"elsewhere:5000/production-control@{OTHER}", f"localhost:5000/production-control@{RELEASE}"])
    docker = SimpleNamespace(image=SimpleNamespace(tag=lambda *args: None, exists=lambda ref: True,
                                                   inspect=lambda ref: recorded if ref == IMAGE_ID else None))
    target = SimpleNamespace(docker=docker, host=SimpleNamespace(label="h1"), host_arg="local",
                             config=SimpleNamespace(compose_project="p", lock_wait=0, registry="localhost:5000"))
    report = deploy.rollback(target, Recorded())
    assert seen["digests"] == frozenset({IMAGE_ID})
    assert seen["pin"] == f"1.0.0-abcdef123456@{RELEASE}", "the rollback does not start the recorded image by its digest"
    assert report.error == (f"rollback to 1.0.0-abcdef123456 on h1 failed: 1.0.0-abcdef123456 failed on h1: it runs image {OTHER}, "
                            f"not {IMAGE_ID}; 2.0.0-abcdef123456 is still serving")


# -- the env file names the release by digest: the wrong image never starts at all ----------------------------
TAG = "2.0.0-abcdef123456"
PINNED = f"{TAG}@{RELEASE}"


def test_the_env_file_names_each_release_by_tag_and_digest() -> None:
    lines = compose_env(load_config({"registry": "localhost:5000"}), PINNED, "1.0.0-abcdef123456", PINNED)
    assert [line for line in lines if "_TAG=" in line] == [f"APP_TAG={PINNED}", f"BLUE_TAG={PINNED}", "GREEN_TAG=1.0.0-abcdef123456"]


def _container(image: str) -> Any:
    state = SimpleNamespace(status="running", health=SimpleNamespace(status="healthy"), started_at=None)
    return SimpleNamespace(config=SimpleNamespace(image=image), image=IMAGE_ID, state=state)


@pytest.mark.parametrize(
    ("image", "tag", "ref"),
    [
        pytest.param(f"localhost:5000/production-control:{PINNED}", TAG, PINNED, id="pinned"),
        pytest.param(f"localhost:5000/production-control:{TAG}", TAG, TAG, id="started-by-tag-by-an-older-toolkit"),
    ],
)
def test_what_runs_reads_back_as_its_tag_and_starts_again_by_its_ref(image: str, tag: str, ref: str) -> None:
    container = _container(image)
    assert (sites.running_tag(container), sites.running_ref(container)) == (tag, ref)
    site = sites.Site(web={"blue": container}, cron=container, proxy=None, legacy=None, live="blue")
    assert (site.tag("blue"), site.live_tag, site.ref("blue"), site.live_ref) == (tag, tag, ref, ref)


def test_status_shows_the_tag_and_the_digest_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deploy, "image_digests", lambda docker, image: [RELEASE])
    shown = deploy._container_status(SimpleNamespace(docker=None), _container(f"localhost:5000/production-control:{PINNED}"))
    assert (shown["tag"], shown["image"], shown["digest"]) == (TAG, f"localhost:5000/production-control:{TAG}", RELEASE)


@pytest.mark.parametrize(
    ("accepted", "recorded", "digest"),
    [
        pytest.param((OTHER, RELEASE), [RELEASE], RELEASE, id="single-image-release"),
        pytest.param((OTHER, RELEASE), [RELEASE, OTHER], OTHER, id="index-first"),
        pytest.param((None, RELEASE), [OTHER], None, id="tag-pushed-again"),
    ],
)
def test_the_pin_is_a_digest_of_the_release_the_engine_recorded(accepted: tuple, recorded: list[str], digest: str | None) -> None:
    image = f"localhost:5000/production-control:{TAG}"
    repo_digests = [f"localhost:5000/production-control@{d}" for d in recorded]
    assert pulling.pin_digest(image, accepted, repo_digests) == digest


def _pull_target(repo_digests: list[str]) -> Any:
    image = SimpleNamespace(inspect=lambda ref: SimpleNamespace(repo_digests=repo_digests))
    return SimpleNamespace(docker=SimpleNamespace(image=image), host=SimpleNamespace(label="h1"))


def _release() -> tuple[Any, Any]:
    variant = SimpleNamespace(manifest=SimpleNamespace(digest=RELEASE, index_digest=None))
    return SimpleNamespace(image=f"localhost:5000/production-control:{TAG}", tag=TAG), variant


def test_a_pulled_release_is_pinned_to_its_digest() -> None:
    release, variant = _release()
    assert pulling.pulled_pin(_pull_target([f"localhost:5000/production-control@{RELEASE}"]), release, variant) == PINNED


def test_a_tag_pushed_again_since_the_registry_was_read_stops_before_anything_changed() -> None:
    release, variant = _release()
    with pytest.raises(DeliveryError) as raised:
        pulling.pulled_pin(_pull_target([f"localhost:5000/production-control@{OTHER}"]), release, variant)
    assert str(raised.value) == (f"localhost:5000/production-control:{TAG} on h1 is not the release the registry named: the engine "
                                 f"has {OTHER} for it, not {RELEASE} (the tag was pushed again meanwhile?); nothing was changed: "
                                 "deploy again")

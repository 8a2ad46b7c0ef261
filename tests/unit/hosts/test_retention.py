"""Retention planning: which releases a host keeps, which references go, and the bytes that frees."""


import pytest

from delivery.errors import DeliveryError
from delivery.hosts.history import HistoryEntry
from delivery.hosts.retention import HostImage, layer_sizes, plan_prune, predict_freed, releases_newest_first

PROJECT = "pc"
REF = "localhost:5000/production-control:{}".format


def entry(time: int, kind: str, tag: str) -> HistoryEntry:
    return HistoryEntry(time=f"20261129T{time:012d}Z", kind=kind, tag=tag, image_id=f"id-{tag}")


def history_ref(e: HistoryEntry) -> str:
    return f"{PROJECT}-history:{e.time}-{e.kind}-{e.tag}"


def host(entries: list[HistoryEntry], extra_refs: dict[str, list[str]] | None = None) -> list[HostImage]:
    """One image per release: its release tag and its history tags (plus `extra_refs`)."""
    images = []
    for tag in releases_newest_first(entries):
        refs = [REF(tag)] + [history_ref(e) for e in entries if e.tag == tag] + (extra_refs or {}).get(tag, [])
        images.append(HostImage(f"id-{tag}", tuple(refs), ("base", "deps", f"code-{tag}")))
    return images


def plan(entries, images, in_use=(), keep=3):
    return plan_prune(entries, images, in_use, keep, PROJECT, REF)


DEPLOYS = [entry(9 - i, "deploy", f"r{9 - i}") for i in range(10)]  # r9 newest


def test_keeps_the_newest_and_removes_every_reference_of_the_others() -> None:
    result = plan(DEPLOYS, host(DEPLOYS))
    assert result.kept == ("r9", "r8", "r7")
    assert result.why_kept == {"r9": "running", "r8": "rollback target"}
    assert result.pruned == tuple(f"r{i}" for i in range(6, -1, -1))
    assert set(result.remove_refs) == {REF(f"r{i}") for i in range(7)} | {history_ref(e) for e in DEPLOYS[3:]}
    assert result.deleted_images == tuple(f"id-r{i}" for i in range(6, -1, -1))


def test_keep_one_still_keeps_the_rollback_target() -> None:
    result = plan(DEPLOYS, host(DEPLOYS), keep=1)
    assert result.kept == ("r9", "r8")
    assert result.why_kept == {"r9": "running", "r8": "rollback target"}


def test_after_a_rollback_the_running_release_is_the_rolled_back_one() -> None:
    entries = [entry(20, "rollback", "r3"), *DEPLOYS]
    result = plan(entries, host(entries), keep=1)
    # The rollback target walks back from r3 (to r2): r4..r9 were rolled back away from.
    assert result.kept == ("r3", "r2")
    assert result.why_kept == {"r3": "running", "r2": "rollback target"}
    assert {"r8", "r9"} <= set(result.pruned) and "r3" not in result.pruned
    assert history_ref(entries[0]) not in result.remove_refs and history_ref(DEPLOYS[6]) not in result.remove_refs


def test_an_image_a_container_uses_is_kept_whatever_its_age() -> None:
    result = plan(DEPLOYS, host(DEPLOYS), in_use={"id-r0"})
    assert result.kept == ("r9", "r8", "r7", "r0")
    assert result.why_kept["r0"] == "used by a container"
    assert not any(ref.endswith("-r0") or ref == REF("r0") for ref in result.remove_refs)


def test_another_projects_history_keeps_the_release_tag_and_the_image() -> None:
    images = host(DEPLOYS, {"r1": ["staging-history:20261129T000000000001Z-deploy-r1"]})
    result = plan(DEPLOYS, images)
    assert "r1" in result.pruned
    assert REF("r1") not in result.remove_refs  # untagging it could break the other project's next `up`
    assert history_ref(DEPLOYS[8]) in result.remove_refs  # our own history tag of r1 goes
    assert "id-r1" not in result.deleted_images


def test_references_that_are_not_on_the_host_are_not_removed() -> None:
    images = [image for image in host(DEPLOYS) if image.id != "id-r0"]  # r0's image was removed by hand
    result = plan(DEPLOYS, images)
    assert "r0" in result.pruned
    assert REF("r0") not in result.remove_refs and history_ref(DEPLOYS[9]) not in result.remove_refs


def test_nothing_to_prune_within_the_limit() -> None:
    result = plan(DEPLOYS[:3], host(DEPLOYS[:3]))
    assert (result.pruned, result.remove_refs, result.deleted_images) == ((), (), ())


def test_an_empty_history_prunes_nothing() -> None:
    assert plan([], []).kept == ()


@pytest.mark.parametrize("keep", [0, -1])
def test_keep_below_one_is_refused(keep: int) -> None:
    with pytest.raises(DeliveryError, match="keep at least 1 release"):
        plan(DEPLOYS, host(DEPLOYS), keep=keep)


def test_predicted_bytes_count_only_layers_nobody_else_holds() -> None:
    images = [
        HostImage("old-1", ("a",), ("base", "deps-old", "code-1")),
        HostImage("old-2", ("b",), ("base", "deps-old", "code-2")),
        HostImage("new", ("c",), ("base", "deps-new", "code-3")),
    ]
    deleted = {
        "old-1": [("base", 100), ("deps-old", 50), ("code-1", 3)],
        "old-2": [("base", 100), ("deps-old", 50), ("code-2", 4)],
    }
    # base stays (new holds it); deps-old goes once, though both deleted images hold it.
    assert predict_freed(deleted, images) == 50 + 3 + 4
    assert predict_freed({"old-1": deleted["old-1"]}, images) == 3


@pytest.mark.parametrize(
    ("layers", "history", "expected"),
    [
        (("l1", "l2"), [5, 0, 7], [("l1", 7), ("l2", 5)]),  # history newest first; metadata steps are 0 bytes
        (("l1", "l2", "l3"), [5, 0, 7], [("l1", 0), ("l2", 7), ("l3", 5)]),  # an empty layer: sizes go to the top
        ((), [], []),
    ],
    ids=["one-to-one", "an-empty-layer", "no-layers"],
)
def test_layer_sizes(layers: tuple[str, ...], history: list[int], expected: list[tuple[str, int]]) -> None:
    assert layer_sizes(layers, history) == expected

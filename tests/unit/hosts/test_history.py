"""The deploy history (pure): history tags and volumes, their entries, merging, the rollback target, and the lock and history names."""

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery.config.references import TAG_PATTERN
from delivery.hosts.history import HISTORY_LABEL, HistoryEntry, entry_labels, entry_volume, history_repository, history_tag, merged, rollback_target
from delivery.hosts.lock import lock_name
from delivery.images import tags

IMAGE_ID = "sha256:" + "f" * 64
STAMP = "20261127T175838316172Z"  # record() writes %Y%m%dT%H%M%S%fZ


@pytest.mark.parametrize(
    ("history_tag", "expected"),
    [
        pytest.param(f"{STAMP}-deploy-1.0.0-0123456789ab", HistoryEntry(STAMP, "deploy", "1.0.0-0123456789ab", IMAGE_ID), id="deploy"),
        pytest.param(f"{STAMP}-rollback-1.0.0-0123456789ab", HistoryEntry(STAMP, "rollback", "1.0.0-0123456789ab", IMAGE_ID), id="rollback"),
        pytest.param(f"{STAMP}-restore-0.9.12-abcdef123456", HistoryEntry(STAMP, "restore", "0.9.12-abcdef123456", IMAGE_ID), id="restore"),
        pytest.param(
            f"{STAMP}-deploy-1.0.0-abcdef123456-dirty-12345678",
            HistoryEntry(STAMP, "deploy", "1.0.0-abcdef123456-dirty-12345678", IMAGE_ID),
            id="dirty-tag-keeps-its-dashes",
        ),
    ],
)
def test_history_entry_parse(history_tag: str, expected: HistoryEntry) -> None:
    assert HistoryEntry.parse(history_tag, IMAGE_ID) == expected


@pytest.mark.parametrize(
    "history_tag",
    [
        pytest.param("latest", id="plain-tag"),
        pytest.param("", id="empty"),
        pytest.param("deploy-1.0.0-0123456789ab", id="no-time"),
        pytest.param(STAMP, id="time-only"),
        pytest.param(f"{STAMP}-deploy", id="no-release-tag"),
        pytest.param("2026-11-27-deploy-1.0.0-0123456789ab", id="dashed-date"),
        pytest.param("20261127T175838-deploy-1.0.0-0123456789ab", id="time-without-Z"),
    ],
)
def test_history_entry_parse_rejects_garbage(history_tag: str) -> None:
    assert HistoryEntry.parse(history_tag, IMAGE_ID) is None


@pytest.mark.parametrize(
    "history_tag",
    [
        pytest.param(f"{STAMP}-bogus-1.0.0-0123456789ab", id="unknown-kind"),
        pytest.param("Z-deploy-1.0.0-0123456789ab", id="time-is-just-Z"),
        pytest.param(f"{STAMP}-deploy-", id="empty-release-tag"),
    ],
)
def test_history_entry_parse_rejects_malformed_fields(history_tag: str) -> None:
    assert HistoryEntry.parse(history_tag, IMAGE_ID) is None


app_tags = st.builds(
    tags.app_tag,
    st.tuples(*[st.integers(0, 999)] * 3).map(lambda v: ".".join(map(str, v))),
    st.text("0123456789abcdef", min_size=12, max_size=40),
    st.one_of(st.none(), st.text("0123456789abcdef", min_size=8, max_size=64)),
)


@given(
    when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)),
    kind=st.sampled_from(["deploy", "rollback", "restore"]),
    app_tag=app_tags,
)
def test_history_tags_round_trip(when: datetime, kind: str, app_tag: str) -> None:
    written = history_tag(when, kind, app_tag)
    assert TAG_PATTERN.fullmatch(written)
    entry = HistoryEntry.parse(written, IMAGE_ID)
    assert entry is not None and (entry.kind, entry.tag, entry.image_id) == (kind, app_tag, IMAGE_ID)


@given(
    first=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)),
    later_by=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3650)),
)
def test_history_entries_sort_by_time_as_text(first: datetime, later_by: timedelta) -> None:
    # history() sorts entries by their time text: it must order them as the times they stand for.
    earlier = HistoryEntry.parse(history_tag(first, "deploy", "1.0.0-0123456789ab"), IMAGE_ID)
    later = HistoryEntry.parse(history_tag(first + later_by, "deploy", "1.0.0-0123456789ab"), IMAGE_ID)
    assert earlier is not None and later is not None and earlier.time < later.time


def test_history_tag_of_a_local_time_is_in_utc() -> None:
    cet = timezone(timedelta(hours=1))
    assert history_tag(datetime(2026, 11, 29, 6, 0, tzinfo=cet), "deploy", "T") == "20261129T050000000000Z-deploy-T"


@pytest.mark.parametrize(
    ("project", "lock", "history"),
    [
        pytest.param("production-control", "production-control-deploy-lock", "production-control-history", id="default-project"),
        pytest.param("plant_a", "plant_a-deploy-lock", "plant_a-history", id="other-project"),
    ],
)
def test_lock_and_history_names_are_per_project(project: str, lock: str, history: str) -> None:
    assert lock_name(project) == lock
    assert history_repository(project) == history


def _entry(minute: int, kind: str, tag: str) -> HistoryEntry:
    return HistoryEntry(f"20261129T10{minute:02d}00000000Z", kind, tag, f"sha256:{tag}")


# Newest first, as history() returns them.
DEPLOYED_A_B_C = [_entry(3, "deploy", "C"), _entry(2, "deploy", "B"), _entry(1, "deploy", "A")]


@pytest.mark.parametrize(
    ("entries", "current", "to", "expected"),
    [
        pytest.param(DEPLOYED_A_B_C, "C", None, "B", id="previous-release"),
        pytest.param([_entry(4, "rollback", "B"), *DEPLOYED_A_B_C], "B", None, "A", id="second-rollback-walks-back"),
        pytest.param([_entry(5, "rollback", "A"), _entry(4, "rollback", "B"), *DEPLOYED_A_B_C], "A", None, None, id="oldest-reached"),
        pytest.param([_entry(5, "deploy", "D"), _entry(4, "rollback", "B"), *DEPLOYED_A_B_C], "D", None, "B", id="deploy-after-rollback"),
        pytest.param([_entry(4, "deploy", "C"), *DEPLOYED_A_B_C], "C", None, "B", id="redeploy-of-same-tag-skipped"),
        pytest.param(DEPLOYED_A_B_C, None, None, "C", id="nothing-running-newest"),
        pytest.param(DEPLOYED_A_B_C, "C", "A", "A", id="explicit-target"),
        pytest.param(DEPLOYED_A_B_C, "C", "C", None, id="explicit-target-is-current"),
        pytest.param(DEPLOYED_A_B_C, "C", "Z", None, id="explicit-target-unknown"),
        pytest.param([], "C", None, None, id="no-history"),
    ],
)
def test_rollback_target_walks_back_through_the_deploys(entries, current, to, expected) -> None:
    found = rollback_target(entries, current, to)

    assert (found.tag if found else None) == expected


# -- the history store: one volume per entry ------------------------------------------------------
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # what `docker volume create` accepts


@given(
    when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)),
    kind=st.sampled_from(["deploy", "rollback", "restore"]),
    app_tag=app_tags,
)
def test_an_entry_round_trips_through_its_volume(when: datetime, kind: str, app_tag: str) -> None:
    entry = HistoryEntry.parse(history_tag(when, kind, app_tag), IMAGE_ID)
    assert entry is not None
    assert VOLUME_NAME.fullmatch(entry_volume("production-control", entry))
    labels = entry_labels("production-control", entry)
    assert labels[HISTORY_LABEL] == "production-control" and HistoryEntry.from_labels(labels) == entry


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({}, id="no-labels"),
        pytest.param({"time": STAMP, "kind": "deploy", "tag": "1.0.0-0123456789ab"}, id="no-image-id"),
        pytest.param({"time": STAMP, "kind": "bogus", "tag": "T", "image_id": IMAGE_ID}, id="unknown-kind"),
        pytest.param({"time": "yesterday", "kind": "deploy", "tag": "T", "image_id": IMAGE_ID}, id="bad-time"),
    ],
)
def test_a_volume_that_is_not_an_entry_is_skipped(labels: dict[str, str]) -> None:
    assert HistoryEntry.from_labels(labels) is None


def test_the_history_merges_volumes_and_old_tags_newest_first() -> None:
    in_volume = _entry(2, "deploy", "B")
    tag_only = _entry(1, "deploy", "A")  # written by an older toolkit, not yet copied to a volume
    both = HistoryEntry(_entry(3, "deploy", "C").time, "deploy", "C", "sha256:from-the-volume")
    tagged_c = HistoryEntry(both.time, "deploy", "C", "sha256:from-the-tag")
    assert merged([both, in_volume], [tagged_c, tag_only]) == [both, in_volume, tag_only]


def test_a_rollback_recorded_despite_its_cron_failing_is_not_undone_by_the_next_rollback() -> None:
    # Issue 20, item 7: B's web switch was final, then its cron failed. Recorded, the next rollback goes to A, not back to C.
    after_cron_failure = [_entry(4, "rollback", "B"), *DEPLOYED_A_B_C]
    target = rollback_target(after_cron_failure, "B")
    assert target is not None and target.tag == "A"

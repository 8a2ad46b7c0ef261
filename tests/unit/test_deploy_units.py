"""The pure parts of deploying: history tags, the lock and history names, the report's dict."""

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery import tags
from delivery.deploy import DeployReport
from delivery.history import HistoryEntry, history_repository
from delivery.lock import lock_name

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
    when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(timezone.utc)),
    kind=st.sampled_from(["deploy", "rollback", "restore"]),
    app_tag=app_tags,
)
def test_history_tags_written_like_record_round_trip(when: datetime, kind: str, app_tag: str) -> None:
    stamp = when.strftime("%Y%m%dT%H%M%S%fZ")
    history_tag = f"{stamp}-{kind}-{app_tag}"
    assert tags.TAG_PATTERN.fullmatch(history_tag)
    assert HistoryEntry.parse(history_tag, IMAGE_ID) == HistoryEntry(stamp, kind, app_tag, IMAGE_ID)


def test_history_stamps_sort_by_time() -> None:
    times = [datetime(2026, 1, 2, 3, 4, 5, 6, timezone.utc), datetime(2026, 11, 27, 17, 58, 38, 316172, timezone.utc),
             datetime(2027, 1, 1, tzinfo=timezone.utc)]
    stamps = [t.strftime("%Y%m%dT%H%M%S%fZ") for t in times]
    assert sorted(reversed(stamps)) == stamps


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


def test_deploy_report_as_dict() -> None:
    report = DeployReport(host="local", image="localhost:5000/production-control:1.0.0-0123456789ab",
                          version="1.0.0-0123456789ab", digest="sha256:abc")
    report.pulled_layers, report.pulled_bytes = 1, 4096
    assert report.as_dict() == {
        "host": "local",
        "image": "localhost:5000/production-control:1.0.0-0123456789ab",
        "version": "1.0.0-0123456789ab",
        "digest": "sha256:abc",
        "store": "",
        "previous": None,
        "pulled_layers": 1,
        "total_layers": 0,
        "pulled_bytes": 4096,
        "total_bytes": 0,
        "pull_seconds": 0.0,
        "seconds_to_healthy": None,
        "healthy": False,
        "rolled_back": False,
        "error": None,
        "pruned": None,
    }

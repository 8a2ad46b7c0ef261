"""The web app, driven through FastAPI's TestClient against a temporary data directory."""

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from production_control import __version__, db, web
from production_control.settings import Settings

T0 = datetime(2026, 11, 27, 17, 0, 0, tzinfo=UTC)


def add_run(settings: Settings, site_name: str, minute: int = 0) -> int:
    conn = db.connect(settings.db_path)
    try:
        start = T0 + timedelta(minutes=minute)
        return db.record_run(
            conn,
            job="record-run",
            started_at=start,
            finished_at=start + timedelta(seconds=1),
            status="ok",
            site_name=site_name,
            app_version="9.9.9",
            detail=f"minute={minute}",
        )
    finally:
        conn.close()


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(web.create_app(settings))


def test_healthz_reports_version_deps_and_commit(
    client: TestClient, settings: Settings, pyproject_version: str
) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": pyproject_version,
        "deps": "deps-1.0.0-0123abcd",
        "commit": "0123456789abcdef",
    }
    assert settings.db_path.is_file()


def test_healthz_is_503_when_database_cannot_be_opened(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("")
    client = TestClient(web.create_app(Settings(data_dir=not_a_dir / "data")))

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert "cannot open" in body["detail"]


def test_runs_lists_recorded_runs_newest_first(client: TestClient, settings: Settings) -> None:
    ids = [add_run(settings, site_name=f"site-{i}", minute=i) for i in range(3)]

    response = client.get("/runs", params={"limit": 2})

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 3
    assert [run["id"] for run in body["runs"]] == [ids[2], ids[1]]
    assert body["runs"][0] == {
        "id": ids[2],
        "job": "record-run",
        "started_at": "2026-11-27T17:02:00.000Z",
        "finished_at": "2026-11-27T17:02:01.000Z",
        "status": "ok",
        "site_name": "site-2",
        "app_version": "9.9.9",
        "detail": "minute=2",
    }


def test_runs_is_empty_on_a_fresh_database(client: TestClient) -> None:
    assert client.get("/runs").json() == {"runs": [], "total": 0}


@pytest.mark.parametrize("limit", [0, -1, web.MAX_RUNS_LIMIT + 1, "many"])
def test_runs_rejects_invalid_limit(client: TestClient, limit: object) -> None:
    assert client.get("/runs", params={"limit": limit}).status_code == 422


def test_index_shows_version_deps_and_runs(client: TestClient, settings: Settings) -> None:
    add_run(settings, site_name="plant-b")

    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f'<dd id="version">{__version__}</dd>' in response.text
    assert '<dd id="deps">deps-1.0.0-0123abcd</dd>' in response.text
    assert "<td>plant-b</td>" in response.text
    assert "No job runs recorded yet" not in response.text


def test_index_escapes_site_name(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    settings = Settings(data_dir=tmp_path, site_name=evil)
    add_run(settings, site_name=evil)

    response = TestClient(web.create_app(settings)).get("/")

    assert response.status_code == 200
    assert evil not in response.text
    assert response.text.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # header and table row


def test_module_app_reads_settings_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.setenv("PRODUCTION_CONTROL_DEPS_TAG", "deps-from-env")
    monkeypatch.setenv("PRODUCTION_CONTROL_GIT_COMMIT", "commit-from-env")
    web.settings_from_env.cache_clear()
    try:
        body = TestClient(web.app).get("/healthz").json()
    finally:
        web.settings_from_env.cache_clear()

    assert (body["deps"], body["commit"]) == ("deps-from-env", "commit-from-env")
    assert (tmp_path / "env-data" / "production_control.db").is_file()


def test_runs_is_503_when_a_query_fails(client: TestClient, settings: Settings) -> None:
    settings.db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(settings.db_path)  # a table of the right name but the wrong shape
    conn.execute("CREATE TABLE job_runs (id INTEGER PRIMARY KEY)")
    conn.close()

    response = client.get("/runs")

    assert response.status_code == 503
    assert response.json()["status"] == "error"

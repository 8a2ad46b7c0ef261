"""HTTP interface: health check, job-run listing and an HTML overview.

Served as `uvicorn production_control.web:app`. The database is opened per request,
so the app imports and starts even when the data directory does not exist yet.
"""

import sqlite3
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from production_control import __version__, db
from production_control.settings import Settings

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

MAX_RUNS_LIMIT = 500


class DatabaseUnavailable(Exception):
    """The job-run database could not be opened."""


@cache
def settings_from_env() -> Settings:
    """The environment's settings, read on first use only."""
    return Settings.from_env()


def get_settings(request: Request) -> Settings:
    """The settings given to create_app, else those of the environment."""
    settings: Settings | None = request.app.state.settings
    return settings or settings_from_env()


def open_db(settings: Annotated[Settings, Depends(get_settings)]) -> Iterator[sqlite3.Connection]:
    """A connection to the job-run database for the duration of one request."""
    try:
        conn = db.connect(settings.db_path)
    except (sqlite3.Error, OSError) as error:
        raise DatabaseUnavailable(f"cannot open {settings.db_path}: {error}") from error
    try:
        yield conn
    finally:
        conn.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
ConnectionDep = Annotated[sqlite3.Connection, Depends(open_db)]
router = APIRouter()


@router.get("/healthz")
def healthz(settings: SettingsDep, conn: ConnectionDep) -> dict[str, str]:
    """Liveness and identity: app version, dependency image tag and git commit."""
    db.count_runs(conn)
    return {"status": "ok", "version": __version__, "deps": settings.deps_tag, "commit": settings.git_commit}


@router.get("/runs")
def list_runs(
    conn: ConnectionDep, limit: Annotated[int, Query(ge=1, le=MAX_RUNS_LIMIT)] = 20
) -> dict[str, Any]:
    """The most recent job runs, newest first, and the total number recorded."""
    return {"runs": db.recent_runs(conn, limit), "total": db.count_runs(conn)}


@router.get("/", response_class=HTMLResponse)
def index(settings: SettingsDep, conn: ConnectionDep) -> HTMLResponse:
    """An HTML overview: version, dependency image and recent job runs."""
    page = TEMPLATES.get_template("index.html").render(
        version=__version__,
        settings=settings,
        runs=db.recent_runs(conn),
        total=db.count_runs(conn),
    )
    return HTMLResponse(page)


def database_error_response(request: Request, error: Exception) -> JSONResponse:
    """503 with `{"status": "error", "detail": ...}` when the database fails."""
    return JSONResponse({"status": "error", "detail": str(error)}, status_code=503)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; without `settings` they are read from the environment on first request."""
    app = FastAPI(title="production-control", version=__version__)
    app.state.settings = settings
    app.include_router(router)
    app.add_exception_handler(DatabaseUnavailable, database_error_response)
    app.add_exception_handler(sqlite3.Error, database_error_response)
    return app


app = create_app()

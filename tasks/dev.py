"""The developer's tasks: doctor, bump, lock and registry."""
from __future__ import annotations

from invoke import task

from delivery.ui import text
from delivery.ui.progress import emit
from delivery.usecases import building, diagnosing

from .common import user_errors


@task(help={"json": "Print as JSON."})
@user_errors
def doctor(c, json=False):
    """Show which builder the build tasks use and which build path it takes (reproducible or through the engine)."""
    result = diagnosing.doctor(c.config.deploy)
    emit(result, json, text.format_doctor(result))


@task(positional=["part"], help={"part": "major, minor or patch.", "deps": "Bump the deps image version instead of the app version."})
@user_errors
def bump(c, part, deps=False):
    """Bump the app version (or with --deps the deps version) in pyproject.toml, keeping its formatting."""
    old, new = building.bump(part, deps)
    print(f"{'deps' if deps else 'app'} version {old} -> {new}")


@task(name="lock")
@user_errors
def lock_(c):
    """Regenerate requirements.lock and requirements-dev.txt (hashed) from pyproject.toml and requirements-dev.in."""
    print(building.lock())


@task
@user_errors
def registry(c):
    """Start the local registry (deploy.registry on a loopback address) if it is not running."""
    print(building.registry_up(c.config.deploy))

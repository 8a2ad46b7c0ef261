"""The build tasks: build-deps, build-app, audit and ci."""
from __future__ import annotations

from pathlib import Path

from invoke import Exit, task

from delivery.ui import text
from delivery.ui.progress import emit
from delivery.usecases import building

from .common import NO_CACHE, cleaning_up_on_interrupt, user_errors


@task(help={"force": "Rebuild and push even if the tag is already in the registry.", "no_cache": NO_CACHE,
            "refresh": "Rebuild without cache on the current base and Debian packages; push it as the next patch "
            "version only if it differs, after predicting what servers would download.",
            "json": "Print the result as JSON."})
@user_errors
@cleaning_up_on_interrupt
def build_deps(c, force=False, no_cache=False, refresh=False, json=False):
    """Build and push the deps image and its SBOM, tagged deps-<semver>-<content hash>; a no-op when the registry has it."""
    result = building.build_deps(c.config.deploy, force=force, use_cache=not no_cache, refresh=refresh)
    emit(result, json, text.format_image(result))


@task(help={"lock": "The lock to audit (default: requirements.lock).", "json": "Print the result as JSON."})
@user_errors
def audit(c, lock=None, json=False):
    """Audit the locked Python packages for known vulnerabilities (ignores: audit-ignores.toml, each dated)."""
    result = building.audit(c.config.deploy, Path(lock).absolute() if lock else None)
    emit(result, json, text.format_audit(result))


@task(help={"no_cache": NO_CACHE, "json": "Print the result as JSON."})
@user_errors
@cleaning_up_on_interrupt
def build_app(c, no_cache=False, json=False):
    """Build and push the app image FROM the pushed deps image, tagged <version>-<commit>."""
    result = building.build_app(c.config.deploy, use_cache=not no_cache)
    emit(result, json, text.format_image(result))


@task(help={"tests": "Which tests run first: unit (default), all (needs the Docker test bed) or none.", "json": "Print the result as JSON."})
@user_errors
@cleaning_up_on_interrupt
def ci(c, tests="unit", json=False):
    """What CI runs on each push: tests, the audit, then build-deps (no-op unless deps changed), then build-app and push."""
    if tests not in ("unit", "all", "none"):
        raise Exit(f"error: --tests {tests!r}: use unit, all or none", code=1)
    result = building.ci(c.config.deploy, tests)
    emit(result, json, text.format_ci(result))

"""production_control delivery tasks. `invoke --list` shows them; `invoke --help TASK` shows flags.

Configuration: invoke.yaml (section `deploy`), each key overridable by
INVOKE_DEPLOY_<KEY> environment variables. The logic lives in the `delivery` package.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from invoke import Collection, Exit, task

from delivery.config.settings import DEFAULTS, check_config_file
from delivery.errors import DeliveryError
from delivery.interrupts import Interrupted, restoring_on_signals
from delivery.usecases import building, diagnosing, operating, releasing
from delivery.usecases.context import DeployFailed, emit

try:  # invoke reads invoke.yaml after importing this file; a broken one would end in a traceback
    check_config_file(Path(__file__).with_name("invoke.yaml"))
except DeliveryError as exc:
    sys.exit(f"error: {exc}")


def _one_or_many(reports):
    return reports[0] if len(reports) == 1 else {"hosts": reports}


def user_errors(fn):
    """One line and exit 1 for errors a user can fix (with --json, the reports so far on stdout)."""

    @functools.wraps(fn)
    def wrapper(c, *args, **kwargs):
        try:
            return fn(c, *args, **kwargs)
        except DeployFailed as exc:
            if kwargs.get("json"):
                print(json.dumps(_one_or_many(exc.reports), indent=2, sort_keys=True))
            raise Exit(f"error: {exc}", code=1) from None
        except DeliveryError as exc:
            raise Exit(f"error: {exc}", code=1) from None

    return wrapper


def _on_interrupt(after: str):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(c, *args, **kwargs):
            try:
                with restoring_on_signals():
                    return fn(c, *args, **kwargs)
            except Interrupted as exc:
                raise Exit(f"error: {fn.__name__.replace('_', '-')} {exc}: {after}", code=exc.exit_code) from None

        return wrapper

    return decorate


# SIGINT, SIGTERM and SIGHUP during the task: the same restore (or cleanup) as an error, then one line and 128+signal.
restoring_on_interrupt = _on_interrupt("cleaned up as after an error (the lines above say what serves); check with `invoke status`")
# The build tasks: their private docker login (delivery/docker/engine.py) goes with them.
cleaning_up_on_interrupt = _on_interrupt("cleaned up as after an error")


NO_CACHE = "Build without the builder's cache, as a fresh CI runner would (same digest: builds are reproducible)."


@task(help={"force": "Rebuild and push even if the tag is already in the registry.", "no_cache": NO_CACHE,
            "refresh": "Rebuild without cache on the current base and Debian packages; push it as the next patch "
            "version only if it differs, after predicting what servers would download.",
            "json": "Print the result as JSON."})
@user_errors
@cleaning_up_on_interrupt
def build_deps(c, force=False, no_cache=False, refresh=False, json=False):
    """Build and push the deps image and its SBOM, tagged deps-<semver>-<content hash>; a no-op when the registry has it."""
    result = building.build_deps(c.config.deploy, force=force, use_cache=not no_cache, refresh=refresh)
    emit(result, json, f"{result['image']}\n{result['digest']}")


@task(help={"lock": "The lock to audit (default: requirements.lock).", "json": "Print the result as JSON."})
@user_errors
def audit(c, lock=None, json=False):
    """Audit the locked Python packages for known vulnerabilities (ignores: audit-ignores.toml, each dated)."""
    result = building.audit(c.config.deploy, Path(lock).absolute() if lock else None)
    emit(result, json, f"audit ok: {result['audited']} packages, {len(result['ignored'])} known vulnerabilities ignored until their dates")


@task(help={"no_cache": NO_CACHE, "json": "Print the result as JSON."})
@user_errors
@cleaning_up_on_interrupt
def build_app(c, no_cache=False, json=False):
    """Build and push the app image FROM the pushed deps image, tagged <version>-<commit>."""
    result = building.build_app(c.config.deploy, use_cache=not no_cache)
    emit(result, json, f"{result['image']}\n{result['digest']}")


@task(help={"tests": "Which tests run first: unit (default), all (needs the Docker test bed) or none.", "json": "Print the result as JSON."})
@user_errors
@cleaning_up_on_interrupt
def ci(c, tests="unit", json=False):
    """What CI runs on each push: tests, the audit, then build-deps (no-op unless deps changed), then build-app and push."""
    if tests not in ("unit", "all", "none"):
        raise Exit(f"error: --tests {tests!r}: use unit, all or none", code=1)
    result = building.ci(c.config.deploy, tests)
    emit(result, json, f"deps {result['deps']['image']} ({'built' if result['deps']['built'] else 'unchanged'})\napp  {result['app']['image']}\n     {result['app']['digest']}")


@task(
    iterable=["host"],
    help={
        "host": "Docker host to deploy to: unix:///path, ssh://user@host, tcp://host:port, a docker context, "
        "or 'local'. Repeat for several hosts (deployed in order, stopping at the first failure). "
        "Default: deploy.hosts (the local engine). With deploy.mode swarm: one swarm manager (docs/cluster.md).",
        "version": "Release to deploy: an app tag (1.0.0-abcdef123456) or a version (1.0.0). Default: this checkout.",
        "json": "Print the deploy report as JSON.",
        "dry_run": "Only predict the layers and bytes each host (swarm: each node) would download; change nothing.",
        "lock_wait": "Seconds to wait for another deploy's lock on a host, showing who holds it (default: deploy.lock_wait, 0).",
        # The watch window and drain are set in invoke.yaml (deploy.monitor, max_error_rate, drain_timeout).
    },
)
@user_errors
@restoring_on_interrupt
def deploy(c, host=None, version=None, json=False, dry_run=False, lock_wait=None):
    """Release on each host with zero downtime: pull, start beside the live release, switch once healthy, watch, drain."""
    reports = releasing.deploy(c.config.deploy, host or [], version, dry_run=dry_run, lock_wait=lock_wait)
    emit(_one_or_many(reports), json, "\n\n".join(releasing.format_report(r) for r in reports))


@task(iterable=["host"], help={"host": "Host(s), as for deploy.", "to": "Release tag to go back to (default: the previous one).", "json": "Print the report as JSON."})
@user_errors
@restoring_on_interrupt
def rollback(c, host=None, to=None, json=False):
    """Go back to the release before the current one (again: further back), from the image on the host (no pull)."""
    reports = releasing.rollback(c.config.deploy, host or [], to)
    emit(_one_or_many(reports), json, "\n".join(f"{r['host']}: now running {r['version']}" for r in reports))


@task(iterable=["host"], help={"host": "Host(s), as for deploy.", "json": "Print as JSON."})
@user_errors
def status(c, host=None, json=False):
    """Show what runs on each host and its deploy history."""
    entries = releasing.status(c.config.deploy, host or [])
    emit(_one_or_many(entries), json, "\n\n".join(releasing.format_status(e) for e in entries))


@task(help={"json": "Print as JSON."})
@user_errors
def doctor(c, json=False):
    """Show which builder the build tasks use and which build path it takes (reproducible or through the engine)."""
    result = diagnosing.doctor(c.config.deploy)
    emit(result, json, diagnosing.format_doctor(result))


@task(iterable=["host"], help={"host": "Host(s), as for deploy.",
                                "force": "Remove the lock even if its holder is alive or cannot be checked from here (another machine)."})
@user_errors
def unlock(c, host=None, force=False):
    """Remove a deploy lock left behind by a deploy that died (a live holder's only with --force)."""
    print("\n".join(releasing.unlock(c.config.deploy, host or [], force=force)))


@task(
    iterable=["host"],
    help={
        "host": "Host(s), as for deploy.",
        "keep": "How many releases to keep, newest first (default: deploy.keep_releases). The running release "
        "and the rollback target are always kept.",
        "dry_run": "Only say what would be pruned and predict the bytes freed; remove nothing.",
        "json": "Print the report as JSON.",
    },
)
@user_errors
@restoring_on_interrupt
def prune(c, host=None, keep=None, dry_run=False, json=False):
    """Remove old releases from each host (history and release tags, layers only they hold); report the bytes freed."""
    reports = releasing.prune(c.config.deploy, host or [], keep, dry_run=dry_run)
    emit(_one_or_many(reports), json, "\n\n".join(releasing.format_prune(r) for r in reports))


@task(
    iterable=["host"],
    help={
        "host": "Host(s), as for deploy; with several, each line starts with the host's name.",
        "service": "Only this service's logs: web, cron or proxy (default: all).",
        "since": "Only lines since then: a duration (10m, 2h), a date/time (2026-11-29T05:00:00Z) or a Unix time.",
        "follow": "Keep printing new lines until Ctrl-C.",
        "tail": "Only the last N lines of each container.",
    },
)
@user_errors
def logs(c, host=None, service=None, since=None, follow=False, tail=None):
    """Show the container logs of the project on each host (web app, cron jobs)."""
    operating.logs(c.config.deploy, host or [], service=service, since=since, tail=tail, follow=follow)


@task(
    name="run-job",
    positional=["name"],
    iterable=["host"],
    help={
        "name": f"The job to run. This checkout's crontab has: {operating.checkout_jobs() or 'no job'}; "
        "an unknown name lists the host's jobs.",
        "host": "Host(s), as for deploy (run on each in turn, stopping at the first failure).",
    },
)
@user_errors
def run_job(c, name, host=None):
    """Run a cron job now in the running release's cron container (same environment, user, overlap lock); exit with its code."""
    code = operating.run_job(c.config.deploy, host or [], name)
    if code != 0:
        raise Exit(code=code)


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


ns = Collection(build_deps, build_app, audit, ci, doctor, deploy, rollback, status, unlock, prune, logs, run_job, bump, lock_, registry)
ns.configure({"deploy": DEFAULTS})

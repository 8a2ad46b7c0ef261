"""The release tasks: deploy, rollback, status, unlock and prune."""
from __future__ import annotations

from invoke import task

from delivery.ui import text
from delivery.ui.progress import emit_reports
from delivery.usecases import releasing

from .common import HOSTS, restoring_on_interrupt, user_errors


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
    emit_reports(reports, json, text.format_report)


@task(iterable=["host"], help={"host": HOSTS, "to": "Release tag to go back to (default: the previous one).", "json": "Print the report as JSON."})
@user_errors
@restoring_on_interrupt
def rollback(c, host=None, to=None, json=False):
    """Go back to the release before the current one (again: further back), from the image on the host (no pull)."""
    reports = releasing.rollback(c.config.deploy, host or [], to)
    emit_reports(reports, json, text.format_rollback, separator="\n")


@task(iterable=["host"], help={"host": HOSTS, "json": "Print as JSON."})
@user_errors
def status(c, host=None, json=False):
    """Show what runs on each host and its deploy history."""
    entries = releasing.status(c.config.deploy, host or [])
    emit_reports(entries, json, text.format_status)


@task(iterable=["host"], help={"host": HOSTS,
                                "force": "Remove the lock even if its holder is alive or cannot be checked from here (another machine)."})
@user_errors
def unlock(c, host=None, force=False):
    """Remove a deploy lock left behind by a deploy that died (a live holder's only with --force)."""
    print("\n".join(releasing.unlock(c.config.deploy, host or [], force=force)))


@task(
    iterable=["host"],
    help={
        "host": HOSTS,
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
    emit_reports(reports, json, text.format_prune)

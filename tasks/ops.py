"""The day-2 tasks: logs and run-job."""
from __future__ import annotations

from invoke import Exit, task

from delivery.usecases import operating

from .common import user_errors


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

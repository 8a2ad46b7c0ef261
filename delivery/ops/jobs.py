"""`invoke run-job`: run one of the crontab's jobs now, on a host, as cron would.

The job runs inside the running cron container (`docker exec`), through the entrypoint's
`job` role, as cron's own runs do: same image, environment, volume and user, and the
same overlap lock (a flock under the container's /run), so a job cron is running is
not started twice. The job's exit code comes back.
"""
from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from python_on_whales import Container
from python_on_whales.components.container.cli_wrapper import ContainerListFilter
from python_on_whales.exceptions import DockerException

from delivery.docker.engine import docker_errors, last_line
from delivery.errors import DeliveryError
from delivery.hosts.services import compose_services
from delivery.hosts.target import Target
from delivery.reporting import Reporter

INSTALLED_CRONTAB = "/etc/cron.d/production-control"  # what cron runs (CRON_SCHEDULE applied)
ENTRYPOINT = "/usr/local/bin/docker-entrypoint.sh"
ALREADY_RUNNING = 75  # the entrypoint's exit code when the job's overlap lock is held (by hand only)
_JOB_LINE = re.compile(r"\s*(?P<schedule>(?:\S+\s+){4}\S+)\s+(?P<user>\S+)\s+.*docker-entrypoint\.sh\s+job\s+(?P<name>\S+)")


@dataclass(frozen=True)
class CronJob:
    name: str
    schedule: str
    user: str


def crontab_jobs(text: str) -> list[CronJob]:
    """The jobs of a crontab (cron.d format: five schedule fields, user, command) that run through the entrypoint."""
    jobs: dict[str, CronJob] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = _JOB_LINE.match(line)
        if match:
            schedule = " ".join(match["schedule"].split())
            jobs.setdefault(match["name"], CronJob(match["name"], schedule, match["user"]))
    return list(jobs.values())


def job_argv(docker_cmd: Sequence[str], container: str, name: str) -> list[str]:
    """`docker exec` of the entrypoint's job role, as root (the entrypoint drops to the app user, as for cron)."""
    return [*docker_cmd, "exec", "--env", "JOB_BY_HAND=1", container, ENTRYPOINT, "job", name]


def cron_container(target: Target) -> Container:
    """The running container of the project's cron service on this host."""
    services = compose_services("cron")
    filters: list[ContainerListFilter] = [("label", f"com.docker.compose.project={target.config.compose_project}"), ("status", "running")]
    with docker_errors(f"listing the containers of {target.config.compose_project} on {target.host.label}"):
        containers = [c for c in target.docker.container.list(filters=filters)
                      if (c.config.labels or {}).get("com.docker.compose.service") in services]
    if not containers:
        raise DeliveryError(f"no running cron container of {target.config.compose_project} on {target.host.label}: "
                            f"deploy first (`invoke deploy --host {target.host_arg}`), see `invoke status`")
    return containers[0]


def host_jobs(target: Target) -> tuple[Container, list[CronJob]]:
    """The running cron container and the jobs its installed crontab runs."""
    container = cron_container(target)
    try:
        text = target.docker.container.execute(container, ["cat", INSTALLED_CRONTAB])
    except DockerException as exc:
        raise DeliveryError(f"reading the crontab of {container.name} on {target.host.label} failed: {last_line(exc)}") from exc
    return container, crontab_jobs(str(text))


def run_job(target: Target, name: str, reporter: Reporter) -> int:
    """Run job `name` now in the cron container, its output on stdout; its exit code."""
    container, jobs = host_jobs(target)
    names = [job.name for job in jobs]
    if name not in names:
        raise DeliveryError(f"unknown job {name!r} on {target.host.label}: its crontab runs {', '.join(names) or 'no job'}")
    reporter.step(f"{target.host.label}: running job {name} in {container.name}")
    argv = job_argv([str(part) for part in target.docker.client_config.docker_cmd], container.id, name)
    code = subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
    if code == ALREADY_RUNNING:
        raise DeliveryError(f"job {name} is already running on {target.host.label} (its overlap lock is held, e.g. by "
                            "cron's own run): it was not started twice; run it again when that run ends")
    return code

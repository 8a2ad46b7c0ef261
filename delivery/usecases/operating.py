"""The day-2 runbooks: logs and run-job."""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from delivery.config.settings import load_config
from delivery.hosts.services import compose_services
from delivery.ops import jobs
from delivery.ops import logs as container_logs
from delivery.reporting import Reporter
from delivery.ui.progress import STDERR
from delivery.usecases.context import ROOT, hosts_from, opened


def logs(section: Mapping[str, Any], hosts: Iterable[str] = (), service: str | None = None, since: str | None = None,
         tail: str | int | None = None, follow: bool = False) -> None:
    """Print the project's container logs of each host (prefixed with the host's name when there are several)."""
    config = load_config(section)
    request = container_logs.logs_request(compose_services(service), since, tail, follow)
    targets = hosts_from(config, hosts)
    with contextlib.ExitStack() as open_targets:  # each compose command reads its target's env file
        commands = []
        for host in targets:
            target = open_targets.enter_context(opened(host, config))
            compose_cmd = [str(part) for part in target.compose().client_config.docker_compose_cmd]
            commands.append((host.label, container_logs.logs_argv(compose_cmd, request)))
        container_logs.show_logs(commands, prefix=len(commands) > 1)


def run_job(section: Mapping[str, Any], hosts: Iterable[str] = (), name: str = "", reporter: Reporter = STDERR) -> int:
    """Run cron job `name` now on each host in turn; the first non-zero exit code stops (and is returned)."""
    config = load_config(section)
    for host in hosts_from(config, hosts):
        with opened(host, config) as target:
            code = jobs.run_job(target, name, reporter)
        if code != 0:
            reporter.step(f"{host.label}: job {name} exited with code {code}")
            return code
    return 0


def checkout_jobs() -> str:
    """The jobs of this checkout's crontab with their schedules (for `invoke --help run-job`)."""
    try:
        found = jobs.crontab_jobs((ROOT / "crontab").read_text())
    except OSError:
        return ""
    return ", ".join(f"{job.name} ({job.schedule})" for job in found)

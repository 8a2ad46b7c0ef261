"""Host by host: open each compose host in turn, run one action on it, stop at the first failure.

A failure on host N keeps the reports of hosts 1..N-1 (which already run the release) in
DeployFailed, so `--json` still prints them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from delivery.config.hosts import Host
from delivery.config.settings import DeployConfig
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.reports import Reportable
from delivery.errors import DeliveryError, DeployFailed
from delivery.hosts.target import Target

R = TypeVar("R", bound=Reportable)
Opener = Callable[[Host], AbstractContextManager[Target]]


@contextlib.contextmanager
def opened(host: Host, config: DeployConfig, compose_file: Path) -> Iterator[Target]:
    """One compose host, connected and checked, closed (its env files removed) at the end."""
    target = Target(host, config, compose_file)
    try:
        yield target
    finally:
        target.close()


def opener(config: DeployConfig, compose_file: Path) -> Opener:
    """How each_host opens a host of this configuration."""
    return lambda host: opened(host, config, compose_file)


def each_host(hosts: list[Host], action: Callable[[Target], R], what: str, open_target: Opener) -> list[R]:
    """Run `action` on each host in turn; stop at the first failure, keeping the reports of the hosts before it."""
    results: list[R] = []
    for host in hosts:
        try:
            with open_target(host) as target:
                result = action(target)
        except DeliveryError as exc:
            if not results:
                raise
            done = [r.as_dict() for r in results]
            raise DeployFailed(f"{what} on {host.label} failed: {exc} (hosts before it: {_outcomes(done)})",
                               [*done, {"host": host.label, "error": str(exc)}]) from exc
        results.append(result)
        if isinstance(result, DeployReport) and not result.healthy:
            done = [r.as_dict() for r in results]
            message = result.error or f"{what} failed"
            if len(done) > 1:
                message += f" (hosts before it: {_outcomes(done[:-1])})"
            raise DeployFailed(message, done)
    return results


def _outcomes(results: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['host']} {'runs ' + r['version'] if r.get('version') else 'done'}" for r in results)

"""Registries of the test bed: Debian's `docker-registry serve CONFIG`, its files under one root.

What a registry is and how it starts live in delivery/registry/local.py, shared with `invoke
registry` (standard library only: this package's one import from outside itself); this module
adds what only the test bed does: finding a running one again and stopping it.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from delivery.registry import local
from delivery.registry.local import RegistryServer as Registry
from delivery.registry.local import TokenAuth, answers
from dockerbed import BedError, processes

__all__ = ["Registry", "TokenAuth", "answers", "running", "start", "stop"]


def running(registry: Registry) -> bool:
    return processes.owned_pid(registry.pid_file, registry.config_file) is not None


def start(registry: Registry, cafile: Path | None = None, timeout: float = 30) -> subprocess.Popen[bytes] | None:
    """Write its config, start it and wait until /v2/ answers; None when it already answers.
    `cafile`: the CA to check a TLS registry's certificate with."""
    try:
        return local.start(registry, cafile, timeout)
    except local.NotStarted as error:
        raise BedError(str(error)) from None


def stop(registry: Registry, process: subprocess.Popen[bytes] | None = None, sig: int = signal.SIGTERM) -> None:
    """Stop it by its pid file (SIGKILL: as if it crashed, cutting pulls in flight). `process`: reaped."""
    processes.stop(registry.pid_file, registry.config_file, sig)
    registry.pid_file.unlink(missing_ok=True)
    processes.reap(process)

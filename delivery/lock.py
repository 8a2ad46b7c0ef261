"""The per-host deploy lock: a Docker network named <compose project>-deploy-lock.

Creating a network whose name exists fails, so exactly one deploy holds it; its
labels say who holds it and since when. It lives on the host, so every operator's
machine sees the same lock.
"""
from __future__ import annotations

import contextlib
import getpass
import os
import socket
from datetime import datetime, timezone
from typing import Iterator

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.engine import last_line
from delivery.errors import DeliveryError


def lock_name(project: str) -> str:
    return f"{project}-deploy-lock"


@contextlib.contextmanager
def deploy_lock(docker: DockerClient, project: str, host_label: str, host_arg: str) -> Iterator[None]:
    """Hold the host's deploy lock for the project; refuse with who holds it when another deploy runs."""
    name = lock_name(project)
    owner = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        docker.network.create(name, labels={"owner": owner, "since": since})
    except DockerException as exc:
        if "already exists" not in (exc.stderr or ""):
            raise DeliveryError(f"taking the deploy lock on {host_label} failed: {last_line(exc)}") from exc
        raise DeliveryError(
            f"another deploy to {host_label} is running ({lock_holder(docker, project) or 'holder unknown'}): wait for it to finish, "
            f"or if it died, `invoke unlock --host {host_arg}`"
        ) from exc
    try:
        yield
    finally:
        with contextlib.suppress(DockerException):
            docker.network.remove(name)


def lock_holder(docker: DockerClient, project: str) -> str | None:
    """Who holds the project's lock and since when; None when nobody does."""
    try:
        labels = docker.network.inspect(lock_name(project)).labels or {}
    except DockerException:
        return None
    return f"held by {labels.get('owner', '?')} since {labels.get('since', '?')}"


def release_lock(docker: DockerClient, project: str) -> bool:
    """Remove a stale lock; True if there was one."""
    try:
        docker.network.remove(lock_name(project))
        return True
    except DockerException:
        return False

"""Deploying a release to Docker hosts with compose: lock, pull (measured), up, health, verify, or roll back.

Host-side state (the deploy lock, delivery/lock.py; the deploy history, delivery/history.py)
lives on each host, so every operator's machine sees the same thing.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery import tags
from delivery.config import DeployConfig, Host
from delivery.engine import EngineInfo, check_engine, connect, docker_errors, last_line
from delivery.errors import DeliveryError
from delivery.history import history, record
from delivery.lock import deploy_lock, lock_holder
from delivery.pullreport import PullPlan, host_layers, plan_pull
from delivery.registry import Manifest, Registry

SERVICE = "app"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Release:
    """An app release in the registry."""

    tag: str
    image: str
    digest: str
    manifest: Manifest
    diff_ids: tuple[str, ...]


@dataclass
class DeployReport:
    host: str
    image: str
    version: str
    digest: str
    store: str = ""
    previous: str | None = None
    pulled_layers: int = 0
    total_layers: int = 0
    pulled_bytes: int = 0
    total_bytes: int = 0
    pull_seconds: float = 0.0
    seconds_to_healthy: float | None = None
    healthy: bool = False
    rolled_back: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Target:
    """One host, as seen through compose with the project's compose file."""

    host: Host
    config: DeployConfig
    compose_file: Path
    docker: DockerClient = field(init=False)
    info: EngineInfo = field(init=False)
    _tmp: tempfile.TemporaryDirectory = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="production-control-")
        self.docker = connect(self.host)
        self.info = check_engine(self.docker, self.host, need_compose=True)

    def compose(self, app_tag: str) -> DockerClient:
        """A client whose compose commands run the project with APP_TAG=app_tag."""
        env_file = Path(self._tmp.name) / f"{app_tag}.env"
        env_file.write_text(
            f"REGISTRY={self.config.registry}\nAPP_TAG={app_tag}\nHTTP_PORT={self.config.http_port}\n"
            f"SITE_NAME={self.config.site_name}\n"
        )
        return connect(
            self.host,
            compose_files=[self.compose_file],
            compose_env_file=env_file,
            compose_project=self.config.compose_project,
        )

    @property
    def host_arg(self) -> str:
        """How to name this host on the command line (--host)."""
        return self.host.url or self.host.context or "local"

    def close(self) -> None:
        self._tmp.cleanup()


# -- releases ---------------------------------------------------------------------------------
def resolve_release(registry: Registry, config: DeployConfig, version: str) -> Release:
    """The release named by an app tag (1.0.0-abcdef123456) or a bare version (1.0.0, if unambiguous)."""
    tag = version
    if "-" not in version:
        matches = [t for t in registry.tags(tags.APP_REPOSITORY) if t.startswith(f"{version}-") and "-dirty-" not in t]
        if not matches:
            raise DeliveryError(f"unknown version {version}: no {tags.APP_REPOSITORY}:{version}-* in {config.registry} (see `invoke status`)")
        if len(matches) > 1:
            raise DeliveryError(f"version {version} is ambiguous ({', '.join(matches)}): pass the full tag with --version")
        tag = matches[0]
    else:
        tags.parse_app_tag(tag)
    manifest = registry.manifest(tags.APP_REPOSITORY, tag)
    config_doc = registry.config(tags.APP_REPOSITORY, manifest)
    diff_ids = tuple(config_doc.get("rootfs", {}).get("diff_ids", []))
    return Release(tag, tags.image_ref(config.registry, tags.APP_REPOSITORY, tag), manifest.digest, manifest, diff_ids)


def predict_pull(target: Target, release: Release) -> PullPlan:
    """What `release` would download on this host, before anything is pulled or stopped."""
    with docker_errors(f"listing images on {target.host.label}"):
        images = target.docker.image.list()
    layers = host_layers(
        target.info.image_store,
        ((img.id, img.repo_digests or [], img.root_fs.layers or []) for img in images),
    )
    return plan_pull(release.image, release.manifest, release.diff_ids, layers)


# -- running, health, verification ------------------------------------------------------------
def running_container(compose: DockerClient):
    with docker_errors("listing the project's containers"):
        containers = compose.compose.ps(services=[SERVICE], all=True)
    return containers[0] if containers else None


def running_tag(container) -> str | None:
    """The app tag the container was started from (from its image reference)."""
    if container is None:
        return None
    _, _, tag, _ = tags.split_image_ref(container.config.image)
    return tag


def wait_healthy(docker: DockerClient, container_id: str, timeout: float, say: Say) -> tuple[bool, str]:
    """Wait until the container's healthcheck passes; fail fast on unhealthy, exit or restart."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            state = docker.container.inspect(container_id).state
        except DockerException as exc:
            last = last_line(exc)
            time.sleep(0.5)  # the engine may be restarting
            continue
        health = state.health.status if state.health else None
        if health == "healthy":
            return True, "healthy"
        # Before the health status: the engine also marks a container that exited unhealthy.
        if state.status in ("exited", "dead") or (state.restarting and state.exit_code):
            return False, f"it exited with code {state.exit_code}"
        if health == "unhealthy":
            return False, "its healthcheck failed"
        if health != last:
            say(f"  waiting for health ({health or state.status})")
            last = health or ""
        time.sleep(0.25)
    return False, f"it was not healthy within {timeout:.0f}s"


def image_digests(docker: DockerClient, image_id: str) -> list[str]:
    with docker_errors("inspecting the running image"):
        return [ref.rsplit("@", 1)[-1] for ref in (docker.image.inspect(image_id).repo_digests or [])]


def pull_hint(reason: str) -> str:
    """What to do after a failed pull (nothing was stopped yet, so the running release is untouched)."""
    lowered = reason.lower()
    if "no space left on device" in lowered:
        todo = "free disk space on the host, e.g. `docker image prune`, then retry"
    elif "no basic auth credentials" in lowered or "unauthorized" in lowered:
        todo = "log the docker CLI in to the registry (deploy.registry_user and its password variable), then retry"
    elif "cannot connect to the docker daemon" in lowered:
        todo = "is the engine running? start it (`sudo scripts/testbed up`) or check --host"
    else:
        todo = "retry when the registry is back"
    return f"the running release is untouched; {todo}"


def start(target: Target, release_tag: str, say: Say) -> tuple[bool, str, float, Any]:
    """compose up the release (already on the host) and wait for health: (healthy, why, seconds, container)."""
    compose = target.compose(release_tag)
    started = time.monotonic()
    with docker_errors(f"starting {release_tag} on {target.host.label}"):
        compose.compose.up(detach=True, pull="never", quiet=True)
    container = running_container(compose)
    if container is None:
        return False, "compose started no container", 0.0, None
    healthy, why = wait_healthy(target.docker, container.id, target.config.health_timeout, say)
    return healthy, why, time.monotonic() - started, container


def deploy(target: Target, release: Release, say: Say) -> DeployReport:
    """Pull, start and verify `release` on one host; restore the previous release if it fails."""
    report = DeployReport(host=target.host.label, image=release.image, version=release.tag, digest=release.digest)
    compose = target.compose(release.tag)
    with deploy_lock(target.docker, target.config.compose_project, target.host.label, target.host_arg):
        previous = running_tag(running_container(compose))
        report.previous = previous
        plan = predict_pull(target, release)
        report.store, report.total_layers, report.total_bytes = plan.store, plan.total_layers, plan.total_bytes
        report.pulled_layers, report.pulled_bytes = plan.pulled_layers, plan.pulled_bytes
        say(f"{target.host.label}: pulling {release.tag} ({plan.pulled_layers}/{plan.total_layers} layers to download)")
        t0 = time.monotonic()
        try:
            for _, output in compose.compose.pull(stream_logs=True):
                say(f"  {output.decode(errors='replace').strip()}")
        except DockerException as exc:
            reason = last_line(exc)
            raise DeliveryError(f"pulling {release.image} on {target.host.label} failed: {reason} ({pull_hint(reason)})") from exc
        report.pull_seconds = round(time.monotonic() - t0, 2)
        say(f"{target.host.label}: starting {release.tag} (previous: {previous or 'none'})")
        healthy, why, seconds, container = start(target, release.tag, say)
        if healthy:
            digests = image_digests(target.docker, container.image)
            if not {release.digest, release.manifest.index_digest} & set(digests):  # a tag of an index: its digest
                healthy, why = False, f"it runs image digest {', '.join(digests) or 'unknown'}, not {release.digest}"
        if healthy:
            report.healthy, report.seconds_to_healthy = True, round(seconds, 2)
            record(target.docker, target.config.compose_project, "deploy", release.tag, container.image)
            say(f"{target.host.label}: {release.tag} is healthy after {seconds:.1f}s")
            return report
        report.error = f"{release.tag} failed on {target.host.label}: {why}"
        say(f"{target.host.label}: {report.error}; last log lines:")
        with contextlib.suppress(DockerException):
            for line in target.docker.container.logs(container.id, tail=15).splitlines():
                say(f"  | {line}")
        if previous and previous != release.tag:
            say(f"{target.host.label}: restoring {previous}")
            ok, why_back, _, back = start(target, previous, say)
            report.rolled_back = ok
            if ok:
                record(target.docker, target.config.compose_project, "restore", previous, back.image)
                report.error += f"; rolled back to {previous}, which is serving"
            else:
                report.error += f"; restoring {previous} failed too: {why_back}"
        else:
            with contextlib.suppress(DockerException):
                compose.compose.stop()
            report.error += "; there was no previous release to restore, so it was stopped"
        return report


def rollback(target: Target, say: Say, to: str | None = None) -> DeployReport:
    """Go back to the previously deployed release (or `to`), using the image already on the host."""
    with deploy_lock(target.docker, target.config.compose_project, target.host.label, target.host_arg):
        entries = history(target.docker, target.config.compose_project)
        current = running_tag(running_container(target.compose("current"))) or (entries[0].tag if entries else None)
        candidates = [e for e in entries if e.tag != current and (to is None or e.tag == to)]
        if not candidates:
            wanted = to or "a previous release"
            raise DeliveryError(f"no {wanted} in the deploy history of {target.host.label}: see `invoke status --host {target.host_arg}`")
        entry = candidates[0]
        image = tags.image_ref(target.config.registry, tags.APP_REPOSITORY, entry.tag)
        with docker_errors(f"restoring the image of {entry.tag}"):
            target.docker.image.tag(entry.image_id, image)  # in case the release tag was removed
        report = DeployReport(host=target.host.label, image=image, version=entry.tag, digest="", previous=current)
        say(f"{target.host.label}: rolling back from {current or 'none'} to {entry.tag} (no pull)")
        healthy, why, seconds, container = start(target, entry.tag, say)
        report.healthy, report.seconds_to_healthy = healthy, round(seconds, 2)
        if container is not None:
            digests = image_digests(target.docker, container.image)
            report.digest = digests[0] if digests else ""
        if not healthy:
            report.error = f"rollback to {entry.tag} on {target.host.label} is not healthy: {why}"
            return report
        record(target.docker, target.config.compose_project, "rollback", entry.tag, container.image)
        report.rolled_back = True
        return report


def status(target: Target) -> dict[str, Any]:
    """What runs on the host and its deploy history."""
    container = running_container(target.compose("current"))
    running = None
    if container is not None:
        state = container.state
        running = {
            "tag": running_tag(container),
            "image": container.config.image,
            "state": state.status,
            "health": state.health.status if state.health else None,
            "started_at": state.started_at.isoformat() if state.started_at else None,
            "digest": (image_digests(target.docker, container.image) or [None])[0],
        }
    return {
        "host": target.host.label,
        "image_store": target.info.image_store,
        "engine": target.info.server_version,
        "running": running,
        "lock": lock_holder(target.docker, target.config.compose_project),
        "history": [asdict(e) for e in history(target.docker, target.config.compose_project)],
    }

"""Getting a release's image onto a compose host: the pull (progress shown, within deploy.pull_timeout),
the digest every container of the deploy is then pinned to, and a rollback's image put back.

The env file names each release by its tag pinned to a digest (`tag@sha256:...`, delivery/images/tags.py):
the one the engine recorded when the deploy pulled the tag (and the registry named), or for a rollback the
one recorded for the history entry's image. `pin_digest` and `pull_hint` are pure.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from delivery.docker.engine import docker_errors
from delivery.errors import DeliveryError
from delivery.hosts.history import HistoryEntry
from delivery.hosts.services import service_of
from delivery.hosts.target import Target
from delivery.images import tags
from delivery.release.pullreport import EngineDownload, engine_download
from delivery.release.release import Release, Variant
from delivery.reporting import Reporter


def pull_hint(reason: str) -> str:
    """What to do after a failed pull (nothing was touched yet, so the running release is untouched)."""
    lowered = reason.lower()
    if "no space left on device" in lowered:
        todo = "free disk space on the host, e.g. `docker image prune`, then retry"
    elif "no basic auth credentials" in lowered or "unauthorized" in lowered:
        todo = "log the docker CLI in to the registry (deploy.registry_user and its password variable), then retry"
    elif "cannot connect to the docker daemon" in lowered:
        todo = "is the engine running? start it (`sudo scripts/testbed up`) or check --host"
    elif "deploy.pull_timeout" in lowered:
        todo = "check the registry and the host's network, or raise deploy.pull_timeout"
    else:
        todo = "retry when the registry is back"
    return f"the running release is untouched; {todo}"


def pull(target: Target, release: Release, reporter: Reporter) -> tuple[float, EngineDownload]:
    """Pull the release's image with compose (progress shown), within deploy.pull_timeout:
    seconds taken, and what the engine's progress says it downloaded."""
    compose = target.compose(blue=release.tag, green=release.tag, cron=release.tag)
    argv = [str(part) for part in compose.client_config.docker_compose_cmd] + ["pull", service_of("blue")]
    started = time.monotonic()
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        raise DeliveryError(f"pulling {release.image} on {target.host.label} failed: {exc}") from exc
    lines = _shown_lines(process, reporter)
    _wait_pull(process, target.config.pull_timeout, lambda reason: _pull_failed(target, release, reason))
    lines.join(timeout=5)
    if process.returncode != 0:
        reason = next((line for line in reversed(lines.seen) if line), f"exit code {process.returncode}")
        raise _pull_failed(target, release, reason)
    return time.monotonic() - started, engine_download(lines.seen)


class _Lines(threading.Thread):
    """Reads the pull's output as it comes, each line shown and kept."""

    def __init__(self, process: subprocess.Popen[bytes], reporter: Reporter) -> None:
        super().__init__(daemon=True)
        self.process, self.reporter, self.seen = process, reporter, list[str]()

    def run(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").strip()
            if line:
                self.seen.append(line)
                self.reporter.step(f"  {line}")


def _shown_lines(process: subprocess.Popen[bytes], reporter: Reporter) -> _Lines:
    reader = _Lines(process, reporter)
    reader.start()
    return reader


def _wait_pull(process: subprocess.Popen[bytes], timeout: float, failed: Callable[[str], DeliveryError]) -> None:
    """Wait for the pull; on a timeout or a signal (delivery/interrupts.py) kill it: the pull never outlives the task."""
    try:
        process.wait(timeout=timeout)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise
        raise failed(f"it did not finish within deploy.pull_timeout ({timeout:g}s)") from None


def _pull_failed(target: Target, release: Release, reason: str) -> DeliveryError:
    return DeliveryError(f"pulling {release.image} on {target.host.label} failed: {reason} ({pull_hint(reason)})")


def pin_digest(image: str, accepted: tuple[str | None, ...], repo_digests: list[str]) -> str | None:
    """Pure: the first of the `accepted` digests (what the tag names: an index's, then the platform's image) that
    the engine recorded for `image` when it pulled it (its RepoDigests), or None when it recorded neither."""
    recorded = tags.recorded_digests(image, repo_digests)
    return next((digest for digest in accepted if digest and digest in recorded), None)


def pulled_pin(target: Target, release: Release, variant: Variant) -> str:
    """The release's tag pinned to the digest the engine recorded when it pulled it (`tag@sha256:...`): what the
    env file names, so every container of the deploy starts from exactly that image (never another one under
    the tag). One line, before anything changed, when the engine's image for the tag is another one."""
    accepted = (variant.manifest.index_digest, variant.manifest.digest)
    with docker_errors(f"inspecting the pulled {release.image} on {target.host.label}"):
        repo_digests = list(target.docker.image.inspect(release.image).repo_digests or [])
    digest = pin_digest(release.image, accepted, repo_digests)
    if digest is None:
        recorded = tags.recorded_digests(release.image, repo_digests)
        raise DeliveryError(
            f"{release.image} on {target.host.label} is not the release the registry named: the engine has "
            f"{', '.join(recorded) or 'no digest'} for it, not {' or '.join(d for d in accepted if d)} (the tag was pushed "
            "again meanwhile?); nothing was changed: deploy again")
    return tags.pinned(release.tag, digest)


def recorded_pin(target: Target, tag: str, image_id: str, image: str) -> str:
    """A rollback's tag pinned to a digest the engine recorded for the image it restores (`image_id`), or the
    tag alone when it has none (then the image ID check after the start is the one guard)."""
    with docker_errors(f"inspecting the image of {tag} on {target.host.label}"):
        repo_digests = list(target.docker.image.inspect(image_id).repo_digests or [])
    recorded = tags.recorded_digests(image, repo_digests)
    return tags.pinned(tag, recorded[0] if recorded else None)


def restore_image(target: Target, entry: HistoryEntry, image: str, reporter: Reporter) -> bool:
    """Tag the image of a history entry as its release again (the release tag may be gone); True if it had to be pulled.

    The history outlives the images (`docker image prune -a` removes them, not the history): then the
    release is pulled again, and must be the very image that ran here, else nothing changes.
    """
    docker, label = target.docker, target.host.label
    pulled = False
    with docker_errors(f"restoring the image of {entry.tag}"):
        if not docker.image.exists(entry.image_id):
            reporter.step(f"{label}: the image of {entry.tag} is no longer on the host (pruned?): pulling {image}")
            docker.image.pull(image, quiet=True)
            found = docker.image.inspect(image).id
            if found != entry.image_id:
                raise DeliveryError(f"{image} in the registry is not the image {entry.tag} ran on {label} ({found[:19]}, "
                                    f"not {entry.image_id[:19]}): nothing was changed; deploy a release instead")
            pulled = True
        docker.image.tag(entry.image_id, image)
    return pulled

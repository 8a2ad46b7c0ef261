"""Deploying a release to Docker hosts with compose, with zero downtime: pull, lock, start the new
release beside the live one, switch the proxy to it once healthy, watch it, drain and stop the old
one, replace cron. A release that never gets healthy never receives a request.

Host-side state (the deploy lock, delivery/hosts/lock.py; the deploy history, delivery/hosts/history.py)
lives on each host, so every operator's machine sees the same thing.

Compose's env file names each release by its tag pinned to a digest (`tag@sha256:...`, delivery/images/tags.py):
the one the engine recorded when the deploy pulled the tag (and the registry named), or for a rollback the
one recorded for the history entry's image. Whatever reads a tag back from a container strips the digest.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.config.hosts import Host
from delivery.config.platforms import engine_platform, lacking
from delivery.config.settings import DeployConfig
from delivery.deploy.compose.proxy import (
    PROXY_SERVICE,
    SLOTS,
    Proxy,
    ProxySpec,
    Window,
    drain_command,
    hold_command,
    needs_replacing,
    other,
    service_of,
    switch_command,
    window,
    window_failure,
)
from delivery.docker.engine import EngineInfo, check_engine, connect, docker_errors, last_line
from delivery.errors import DeliveryError
from delivery.hosts.history import HistoryEntry, history, record, rollback_target
from delivery.hosts.lock import deploy_lock, lock_holder
from delivery.hosts.retention import prune_after_deploy
from delivery.hosts.services import CRON_SERVICE
from delivery.images import tags
from delivery.interrupts import shielded
from delivery.registry.client import Manifest, Registry
from delivery.release.pullreport import EngineDownload, PullPlan, engine_download, host_layers, plan_pull

Say = Callable[[str], None]


@dataclass(frozen=True)
class Variant:
    """One platform's image of a release: what a host of that platform pulls and runs."""

    platform: str  # linux/amd64
    manifest: Manifest  # its index_digest is set when the tag names an index
    diff_ids: tuple[str, ...]


@dataclass(frozen=True)
class Release:
    """An app release in the registry: one image, or one index of an image per platform."""

    tag: str
    image: str
    digest: str  # what the tag names: the index's digest for a multi-platform release, else the image manifest's
    variants: tuple[Variant, ...]

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(v.platform for v in self.variants)

    def variant(self, platform: str, host: str) -> Variant:
        """The image a host of `platform` pulls; one line, before anything changes, when the release has none."""
        for variant in self.variants:
            if variant.platform == platform:
                return variant
        raise lacking("the image", platform, self.platforms, f" for host {host}, which runs {platform}", self.image)


@dataclass
class DeployReport:
    host: str
    image: str
    version: str
    digest: str  # the image manifest of the host's platform
    store: str = ""
    platform: str = ""  # the host's, from its engine (docker info): the release's image for it was pulled
    index_digest: str | None = None  # what the tag names when the release is multi-platform (engines record it)
    previous: str | None = None
    predicted_layers: int = 0  # predicted before the pull (manifest against the host's layers)
    total_layers: int = 0
    predicted_bytes: int = 0  # predicted: layer blobs + config, compressed, as the registry serves them
    total_bytes: int = 0
    measured_layers: int = 0  # measured: layers the engine's pull progress reported downloading
    measured_bytes: int = 0  # measured: their sizes as it printed them (4 significant digits; no config)
    pull_seconds: float = 0.0
    seconds_to_healthy: float | None = None
    healthy: bool = False
    rolled_back: bool = False  # a failed deploy: the previous release kept serving / a rollback that took over
    error: str | None = None
    slot: str | None = None  # the web slot (blue, green) the release was started in
    switch_seconds: float | None = None  # from the new container healthy to the proxy switched
    drain_seconds: float | None = None  # the old container's in-flight requests finishing
    monitor: dict[str, Any] | None = None  # the watch window: requests and errors the proxy counted
    proxy_restarts: int = 0  # the proxy container restarted during the deploy (its restart policy acted)
    seconds: float = 0.0  # wall time of the whole deploy on this host
    pruned: dict[str, Any] | None = None  # retention after a healthy deploy (delivery/hosts/retention.py)
    web_live: bool = False  # the web switch is final and recorded in the history (a cron failure after it undoes nothing)
    cron: str | None = None  # the cron outcome, reported on its own line: "runs TAG", or "failed: why"

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
    _env_files: Any = field(init=False, repr=False, default_factory=itertools.count)

    def __post_init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="production-control-")
        self.docker = connect(self.host)
        self.info = check_engine(self.docker, self.host, need_compose=True)

    def compose(self, blue: str | None = None, green: str | None = None, cron: str | None = None) -> DockerClient:
        """A client whose compose commands run the project with these releases (tags, or `tag@sha256:...`)
        in the web slots and cron."""
        env_file = Path(self._tmp.name) / f"{next(self._env_files)}.env"
        env_file.write_text("\n".join(compose_env(self.config, blue, green, cron)) + "\n")
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


def compose_env(config: DeployConfig, blue: str | None, green: str | None, cron: str | None) -> list[str]:
    """Pure: the lines of the env file compose runs the project with. Each release is a tag, or a tag pinned to
    its digest (`1.0.0-abc@sha256:...`): docker-compose.yml then names `<registry>/production-control:<tag>@<digest>`,
    and the engine runs exactly that digest, whatever the tag names meanwhile."""
    lines = [
        f"REGISTRY={config.registry}", f"HTTP_PORT={config.http_port}", f"SITE_NAME={config.site_name}",
        f"APP_TAG={cron or blue or green or 'none'}", f"BLUE_TAG={blue or ''}", f"GREEN_TAG={green or ''}",
    ]
    if config.proxy_image:
        lines.append(f"PROXY_IMAGE={config.proxy_image}")
    if config.cron_schedule:  # validated: five fields, no control character
        lines.append(f"CRON_SCHEDULE={config.cron_schedule}")
    return lines


# -- releases ---------------------------------------------------------------------------------
def resolve_release(registry: Registry, config: DeployConfig, version: str) -> Release:
    """The release named by an app tag (1.0.0-abcdef123456) or a bare version (1.0.0, if unambiguous),
    with the image of each platform it offers (an index's entries; a single image's own platform)."""
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
    offered = registry.index_platforms(tags.APP_REPOSITORY, tag)
    variants = []
    for platform in offered or [None]:
        manifest = registry.manifest(tags.APP_REPOSITORY, tag, *([platform] if platform else []))
        config_doc = registry.config(tags.APP_REPOSITORY, manifest)
        own = engine_platform(config_doc.get("os"), config_doc.get("architecture"))
        variants.append(Variant(platform or own, manifest, tuple(config_doc.get("rootfs", {}).get("diff_ids", []))))
    digest = variants[0].manifest.index_digest or variants[0].manifest.digest
    return Release(tag, tags.image_ref(config.registry, tags.APP_REPOSITORY, tag), digest, tuple(variants))


def predict_pull(target: Target, variant: Variant, image: str) -> PullPlan:
    """What `variant` (the host's platform's image of a release) would download on this host, before anything is pulled or stopped."""
    with docker_errors(f"listing images on {target.host.label}"):
        images = target.docker.image.list()
    layers = host_layers(
        target.info.image_store,
        ((img.id, img.repo_digests or [], img.root_fs.layers or []) for img in images),
    )
    return plan_pull(image, variant.manifest, variant.diff_ids, layers)


# -- what runs on a host ----------------------------------------------------------------------
LEGACY_SERVICE = "app"  # the single-container layout of earlier releases (web + cron in one)


@dataclass
class Site:
    """The project's containers on one host, as compose labels them."""

    web: dict[str, Any]  # slot -> running container
    cron: Any | None
    proxy: Any | None
    legacy: Any | None
    live: str | None = None  # the slot the proxy sends requests to

    def tag(self, slot: str | None) -> str | None:
        return running_tag(self.web.get(slot)) if slot else None

    def ref(self, slot: str | None) -> str | None:
        return running_ref(self.web.get(slot)) if slot else None

    @property
    def live_tag(self) -> str | None:
        if self.live:
            return self.tag(self.live)
        return running_tag(self.legacy) if self.legacy is not None else None

    @property
    def live_ref(self) -> str | None:
        return running_ref(self.live_container) if self.live or self.legacy is not None else None

    @property
    def live_container(self) -> Any | None:
        return self.web.get(self.live) if self.live else self.legacy


def _running(container: Any) -> bool:
    return container is not None and container.state.status in ("running", "restarting")


def survey(target: Target) -> Site:
    """What runs on the host now, and which web slot is live (asking the proxy when both run)."""
    compose = target.compose()
    with docker_errors(f"listing the project's containers on {target.host.label}"):
        containers = compose.compose.ps(all=True)
    by_service: dict[str, Any] = {}
    for container in containers:
        service = (container.config.labels or {}).get("com.docker.compose.service")
        if service and _running(container):
            by_service[service] = container
    site = Site(
        web={slot: by_service[service_of(slot)] for slot in SLOTS if service_of(slot) in by_service},
        cron=by_service.get(CRON_SERVICE),
        proxy=by_service.get(PROXY_SERVICE),
        legacy=by_service.get(LEGACY_SERVICE),
    )
    if len(site.web) == 1:
        site.live = next(iter(site.web))
    elif len(site.web) == 2:  # a deploy was interrupted: the proxy knows which one is live
        proxy = Proxy(target.docker, container=site.proxy.id if site.proxy is not None else None, patience=2)
        oldest_first = sorted(SLOTS, key=lambda slot: site.web[slot].state.started_at)
        try:
            servers = proxy.stats()
            # Switched: the new one has the live weight, the old one the fallback weight. Not yet
            # switched: the new one is held (DRAIN). A restarted proxy forgot both: the older one was live.
            site.live = max(oldest_first, key=lambda slot: (servers[slot].weight, servers[slot].status == "UP"))
        except (DeliveryError, KeyError):
            site.live = oldest_first[0]
    return site


# -- running, health, verification ------------------------------------------------------------
def running_tag(container: Any) -> str | None:
    """The app tag the container was started from (from its image reference, `...:tag[@sha256:...]`)."""
    if container is None:
        return None
    _, _, tag, _ = tags.split_image_ref(container.config.image)
    return tag


def running_ref(container: Any) -> str | None:
    """What the env file names to start the container's image again: its tag, pinned to the digest it was
    started by (`tag@sha256:...`; a container an older toolkit started by tag alone: the tag)."""
    if container is None:
        return None
    _, _, tag, digest = tags.split_image_ref(container.config.image)
    return tags.pinned(tag, digest) if tag else None


def wait_healthy(docker: DockerClient, container_id: str, timeout: float, say: Say) -> tuple[bool, str]:
    """Wait until the container's healthcheck passes; fail fast on unhealthy, exit or restart."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            state = docker.container.inspect(container_id).state
        except DockerException as exc:
            # The engine went away (restarting?): containers it brings back come back unchecked
            # and the proxy forgets its state, so this deploy stops here and restores.
            return False, f"the engine stopped answering ({last_line(exc)})"
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


def image_mismatch(accepted: frozenset[str], image_id: str, repo_digests: list[str]) -> str | None:
    """Pure: why a started container does not run the release (its image ID or a repo digest must be
    accepted: the registry's digests for a deploy, the recorded image ID for a rollback); None when it does."""
    if not accepted or accepted & {image_id, *repo_digests}:
        return None
    runs = f"image digest {', '.join(repo_digests)}" if repo_digests else f"image {image_id or 'unknown'}"
    return f"it runs {runs}, not {' or '.join(sorted(accepted))}"


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


def image_digests(docker: DockerClient, image_id: str) -> list[str]:
    return running_image(docker, image_id)[0]


def running_image(docker: DockerClient, image_id: str) -> tuple[list[str], str]:
    """The repo digests of a container's image, and its platform (what its config says)."""
    with docker_errors("inspecting the running image"):
        image = docker.image.inspect(image_id)
    return [ref.rsplit("@", 1)[-1] for ref in (image.repo_digests or [])], engine_platform(image.os, image.architecture)


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


def pull(target: Target, release: Release, say: Say) -> tuple[float, EngineDownload]:
    """Pull the release's image with compose (progress shown), within deploy.pull_timeout:
    seconds taken, and what the engine's progress says it downloaded."""
    compose = target.compose(blue=release.tag, green=release.tag, cron=release.tag)
    argv = [str(part) for part in compose.client_config.docker_compose_cmd] + ["pull", service_of("blue")]
    started = time.monotonic()
    timeout = target.config.pull_timeout
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        raise DeliveryError(f"pulling {release.image} on {target.host.label} failed: {exc}") from exc
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace").strip()
            if line:
                lines.append(line)
                say(f"  {line}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        process.wait(timeout=timeout)
    except BaseException as exc:  # a timeout, or a signal (delivery/interrupts.py): the pull never outlives the task
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise
        reason = f"it did not finish within deploy.pull_timeout ({timeout:g}s)"
        raise DeliveryError(f"pulling {release.image} on {target.host.label} failed: {reason} ({pull_hint(reason)})") from None
    reader.join(timeout=5)
    if process.returncode != 0:
        reason = next((line for line in reversed(lines) if line), f"exit code {process.returncode}")
        raise DeliveryError(f"pulling {release.image} on {target.host.label} failed: {reason} ({pull_hint(reason)})")
    return time.monotonic() - started, engine_download(lines)


def _log_tail(target: Target, container_id: str, say: Say) -> None:
    with contextlib.suppress(DockerException):
        for line in target.docker.container.logs(container_id, tail=15).splitlines():
            say(f"  | {line}")


class HandoverFailed(DeliveryError):
    """The new release did not take over; what was serving still is."""


class CronFailed(DeliveryError):
    """The web app switched to the new release, but its cron did not start (the old cron was put back)."""


def _up(target: Target, service: str, tags_: dict[str, str | None], say: Say) -> Any:
    """compose up one service (no dependencies, no pull) and return its container."""
    compose = target.compose(**tags_)
    with docker_errors(f"starting {service} on {target.host.label}"):
        compose.compose.up([service], detach=True, pull="never", quiet=True, dependencies=False)
        containers = compose.compose.ps(services=[service], all=True)
    if not containers:
        raise DeliveryError(f"compose started no {service} container on {target.host.label}")
    return containers[0]


def _remove(target: Target, service: str, tags_: dict[str, str | None]) -> None:
    with docker_errors(f"removing {service} on {target.host.label}"):
        target.compose(**tags_).compose.rm([service], stop=True)


def ensure_proxy(target: Target, site: Site, tags_: dict[str, str | None], say: Say, proxy: Proxy) -> None:
    """Start the proxy when it is not running (first deploy, or after it was removed); keep a running
    one current: a changed configuration is reloaded in place (no connection dropped), a changed image
    or address replaces the container. `proxy` is attached to the container that serves afterwards."""
    if site.proxy is None:
        say(f"{target.host.label}: starting the proxy")
        site.proxy = _start_proxy(target, tags_)
        proxy.attach(site.proxy.id)
        return
    proxy.attach(site.proxy.id)
    wanted = wanted_proxy(target, tags_)
    changes = wanted.changes(running_proxy(site.proxy, proxy))
    if not changes:
        return
    label = target.host.label
    if not needs_replacing(changes):
        seconds = proxy.reload(wanted.config)
        say(f"{label}: proxy configuration changed: reloaded in {seconds:.1f}s (no connection closed)")
        return
    say(f"{label}: proxy {', '.join(changes)}: replacing the proxy container "
        "(connections are refused until the new one listens; docs/operations.md, \"Keeping the proxy current\")")
    with docker_errors(f"pulling the proxy image {wanted.image} on {label}"):
        target.compose(**tags_).compose.pull([PROXY_SERVICE], quiet=True)
    check_proxy_image(target, wanted)
    site.proxy = _start_proxy(target, tags_)
    proxy.attach(site.proxy.id)
    if site.live and not proxy.wait(target.config.health_timeout, lambda: proxy.server(site.live).check_passes):
        raise DeliveryError(f"the new proxy on {label} does not pass its check of {site.live} within deploy.health_timeout: "
                            "see `docker logs` of the proxy, then put deploy.proxy_image back and deploy")
    if site.live:  # its server state stayed in the old container: the live slot alone takes traffic
        proxy.set(switch_command(site.live, None) + "; " + drain_command(other(site.live)))


def _start_proxy(target: Target, tags_: dict[str, str | None]) -> Any:
    """compose up the proxy (created, or replaced when its definition changed); its container."""
    compose = target.compose(**tags_)
    try:
        compose.compose.up([PROXY_SERVICE], detach=True, pull="missing", quiet=True, dependencies=False)
    except DockerException as exc:
        reason = last_line(exc)
        hint = ""
        if "already allocated" in reason or "address already in use" in reason:
            hint = f" (port {target.config.http_port} is taken on the host: free it or set deploy.http_port)"
        raise DeliveryError(f"starting the proxy on {target.host.label} failed: {reason}{hint}") from exc
    with docker_errors(f"listing the proxy on {target.host.label}"):
        return compose.compose.ps(services=[PROXY_SERVICE])[0]


def wanted_proxy(target: Target, tags_: dict[str, str | None]) -> ProxySpec:
    """The proxy docker-compose.yml asks for, as compose resolves it with this deploy's settings."""
    with docker_errors(f"reading the compose file {target.compose_file}"):
        model = target.compose(**tags_).compose.config(return_json=True)
    service = model["services"][PROXY_SERVICE]
    port = service["ports"][0]
    return ProxySpec(service["image"], tuple(service.get("command") or ()), f"{port.get('host_ip') or '0.0.0.0'}:{port['published']}",
                     model["configs"]["haproxy"]["content"])


def running_proxy(container: Any, proxy: Proxy) -> ProxySpec:
    """What the running proxy container is: its image reference, published address and configuration file."""
    bindings = (container.host_config.port_bindings or {}).get("8080/tcp") or [None]
    bind = f"{bindings[0].host_ip or '0.0.0.0'}:{bindings[0].host_port}" if bindings[0] is not None else "none"
    return ProxySpec(container.config.image, tuple(container.config.cmd or ()), bind, proxy.running_config())


def check_proxy_image(target: Target, wanted: ProxySpec) -> None:
    """The new proxy image accepts the configuration, checked in a throwaway container with no network,
    before the running proxy is touched."""
    argv = target.docker.docker_cmd + ["run", "--rm", "-i", "--network", "none", "--entrypoint", "sh", wanted.image,
                                       "-c", "cat >/tmp/haproxy.cfg && haproxy -c -q -f /tmp/haproxy.cfg"]
    try:
        run(argv, input=wanted.config.encode())
    except DockerException as exc:
        raise DeliveryError(f"the proxy image {wanted.image} rejects the configuration ({last_line(exc)}): "
                            "the running proxy is untouched") from exc


def take_out_free_slot(target: Target, site: Site, proxy: Proxy, old: str | None, new: str,
                       tags_: dict[str, str | None], say: Say) -> None:
    """Hold the free slot out of the proxy's rotation (no requests until it is switched in), and only then
    remove what an interrupted deploy left in it, once its requests in flight are done (up to deploy.drain_timeout):
    the proxy may still send it requests (it was switched in, or the proxy restarted and forgot the hold)."""
    if old and proxy.container:
        proxy.set(hold_command(new))
    if new not in site.web:
        return
    say(f"{target.host.label}: removing {service_of(new)}, left by an interrupted deploy (held out of rotation first)")
    if old and proxy.container:
        proxy.wait(target.config.drain_timeout, lambda: proxy.server(new).in_flight == 0)
    _remove(target, service_of(new), tags_)


def handover(target: Target, site: Site, tag: str, report: DeployReport, say: Say, digests: frozenset[str] = frozenset(),
             platform: str | None = None, kind: str = "deploy", pin: str | None = None) -> Any:
    """Start `tag` (by `pin`, `tag@sha256:...`, when given) in the free web slot beside the live one, switch the
    proxy to it once healthy, watch it, record it in the history as `kind` (the web switch is final), drain and
    stop the old slot, then replace cron. Whatever fails before the record, what was serving keeps serving.

    Returns the new web container. Raises HandoverFailed (or DeliveryError) after restoring, or CronFailed
    (the web switch stays, and stays recorded).
    """
    config, label = target.config, target.host.label
    old = site.live
    new = other(old)
    # What the env file names for each service: a release's tag, pinned to the digest it runs by (tag@sha256:...).
    tags_: dict[str, str | None] = {"blue": site.ref("blue"), "green": site.ref("green"), "cron": running_ref(site.cron)}
    tags_[new] = pin or tag
    tags_["cron"] = tags_["cron"] or site.live_ref or tags_[new]
    report.slot = new
    proxy = Proxy(target.docker)
    if site.legacy is None:
        ensure_proxy(target, site, tags_, say, proxy)
    take_out_free_slot(target, site, proxy, old, new, tags_, say)
    container = None
    switched = False
    try:
        say(f"{label}: starting {tag} in slot {new} (live: {old or 'none'}, {site.live_tag or 'nothing'})")
        started = time.monotonic()
        container = _up(target, service_of(new), tags_, say)
        healthy, why = wait_healthy(target.docker, container.id, config.health_timeout, say)
        if healthy and digests:  # the platform's manifest digest (or its index's, for a tag that names an index)
            running, runs_on = running_image(target.docker, container.image)
            if mismatch := image_mismatch(digests, container.image, running):
                healthy, why = False, mismatch
            elif platform and runs_on != platform and "unknown" not in runs_on:
                healthy, why = False, f"it runs the {runs_on} image, not the host's {platform}"
        if not healthy:
            say(f"{label}: {tag} is not healthy ({why}); last log lines:")
            _log_tail(target, container.id, say)
            raise HandoverFailed(f"{tag} failed on {label}: {why}")
        ready_at = time.monotonic()
        report.seconds_to_healthy = round(ready_at - started, 2)
        if site.legacy is not None:  # the old single-container layout holds the port: swap it for the proxy
            say(f"{label}: replacing the single-container layout ({LEGACY_SERVICE}) with the proxy")
            with docker_errors(f"stopping the old {LEGACY_SERVICE} container"):
                target.docker.container.stop(site.legacy.id)
            ensure_proxy(target, site, tags_, say, proxy)
        if not proxy.wait_passing(new, timeout=max(10.0, config.health_timeout / 3)):
            raise HandoverFailed(f"{tag} failed on {label}: healthy in its container, but the proxy's check of slot {new} does not pass")
        proxy.set(switch_command(new, old))
        switched = True
        report.switch_seconds = round(time.monotonic() - ready_at, 3)
        say(f"{label}: proxy switched to {new} ({tag}) in {report.switch_seconds:.2f}s")
        if old and config.monitor > 0:
            observed = watch(proxy, new, config.monitor, say, label,
                             state=lambda: container_state(target.docker, container.id),
                             min_requests=config.watch_min_requests,
                             check_timeout=max(10.0, config.health_timeout / 3))
            report.monitor = observed.as_dict() | {"switched_back": False}
            if failure := window_failure(observed, config.max_error_rate, config.watch_min_requests):
                report.monitor["switched_back"] = True
                raise HandoverFailed(f"{tag} failed on {label}: {failure} in the {config.monitor:g}s watch window; switched back")
    except BaseException as exc:
        report.proxy_restarts = proxy.restarts
        with shielded():  # a signal now (a cancelled CI job's second one) does not cut the restore short
            restore(target, site, proxy, old, new, tags_, switched, say)
        if isinstance(exc, DeliveryError):
            raise
        if isinstance(exc, DockerException):
            raise HandoverFailed(f"{tag} failed on {label}: {last_line(exc)}") from exc
        raise
    # The new release serves and passed its watch window: from here on, nothing switches back.
    record_switch(target, kind, tag, container, report, say)
    try:
        if old:
            seconds, left = proxy.drain(old, config.drain_timeout)
            report.drain_seconds = round(seconds, 2)
            say(f"{label}: drained {old} in {seconds:.1f}s" + (f" ({left} requests still in flight, stopped anyway)" if left else ""))
            _remove(target, service_of(old), tags_)
        if site.legacy is not None:
            with docker_errors(f"removing the old {LEGACY_SERVICE} container"):
                target.docker.container.remove(site.legacy.id, force=True)
    except (DeliveryError, DockerException) as exc:
        leftover = service_of(old) if old else LEGACY_SERVICE
        say(f"{label}: warning: {tag} serves, but removing the old {leftover} failed ({exc}); "
            "the next deploy removes it")
    report.proxy_restarts = proxy.restarts
    if proxy.restarts:
        say(f"{label}: the proxy restarted during the deploy (its restart policy brought it back); its state was applied again")
    try:
        with shielded():  # stop-first: a signal must not leave the host with no cron
            replace_cron(target, tags_, tag, running_ref(site.cron), say, digests=digests, ref=pin)
    except CronFailed as exc:
        report.cron = f"failed: {exc}"
        raise
    report.cron = f"runs {tag}"
    return container


def record_switch(target: Target, kind: str, tag: str, container: Any, report: DeployReport, say: Say) -> None:
    """Record a final web switch in the host's history; a failure to record is a warning (the switch stands)."""
    report.web_live = True
    try:
        record(target.docker, target.config.compose_project, kind, tag, container.image)
    except DeliveryError as exc:
        say(f"{target.host.label}: warning: {tag} serves, but {exc}; `invoke rollback` does not know it serves")


def _serving(site: Site, old: str | None) -> str:
    return f"{site.live_tag} is serving" if old or site.legacy is not None else "nothing was serving before"


@dataclass(frozen=True)
class ContainerState:
    """What the engine says of a container: its status, how often its restart policy restarted it, its exit code."""

    status: str
    restarts: int
    exit_code: int | None = None


def container_state(docker: DockerClient, container_id: str) -> ContainerState:
    """The container's state now (one line on failure: the engine stopped answering)."""
    with docker_errors("inspecting the new container"):
        container = docker.container.inspect(container_id)
    return ContainerState(container.state.status, container.restart_count or 0, container.state.exit_code)


def container_problem(before: ContainerState, now: ContainerState) -> str | None:
    """Pure: why the new container no longer serves (it exited, or restarted since `before`), or None."""
    if now.status != "running":
        code = f" (exit code {now.exit_code})" if now.exit_code is not None else ""
        return f"the new container is {now.status}{code}"
    if now.restarts != before.restarts:
        return f"the new container restarted ({now.restarts - before.restarts} times)"
    return None


NO_TRAFFIC = "no traffic in the watch window: passed on the proxy's health checks only"


def watch(proxy: Proxy, slot: str, seconds: float, say: Say, label: str,
          state: Callable[[], ContainerState] | None = None, min_requests: int = 0,
          check_timeout: float = 10.0, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> Window:
    """The watch window: what the proxy counts for `slot` over `seconds` after the switch. It fails closed:
    a Window with a `problem` when its stats cannot be read at its start or end, or when `state` (the new
    container's) says it exited or restarted. With no traffic and no minimum, it passes only if the proxy's
    own health check of `slot` passes (within `check_timeout`), and its `note` says so."""
    say(f"{label}: watching {slot} for {seconds:g}s (old release kept behind it)")
    started = clock()
    reads = failed = 0
    last_error = ""

    def read() -> Any:
        nonlocal reads, failed, last_error
        reads += 1
        try:
            return proxy.server(slot)
        except DeliveryError as exc:
            failed += 1
            last_error = str(exc)
            return None

    def checked() -> str | None:
        if state is None:
            return None
        try:
            return container_problem(before, state())
        except DeliveryError as exc:
            return f"the new container cannot be inspected ({exc})"

    before = state() if state is not None else None
    first = read()
    last = first
    problem = None
    while clock() - started < seconds:
        sleep(min(1.0, max(0.0, seconds - (clock() - started))))
        if problem := checked():
            break
        last = read()
    elapsed = clock() - started
    if problem is None and (first is None or last is None):
        problem = f"stats unreadable: {failed} of {reads} reads failed ({last_error})"
    counted = window(first, last, elapsed) if first is not None and last is not None else Window(elapsed, 0, 0)
    note = None
    if problem is None and counted.requests == 0 and min_requests == 0:
        if proxy.wait_passing(slot, check_timeout):
            note = NO_TRAFFIC
        else:
            problem = f"no traffic in the watch window, and the proxy's health check of {slot} does not pass"
    observed = Window(counted.seconds, counted.requests, counted.errors, failed, problem, note)
    say(f"{label}: {observed.requests} requests, {observed.errors} failed ({observed.error_rate:.1%})"
        + (f", {failed} of {reads} stats reads failed" if failed else "")
        + (f"; {problem}" if problem else "") + (f"; {note}" if note else ""))
    return observed


def restore_outcome(servers: dict[str, Any] | None, old: str, new: str, removed: bool) -> str:
    """Pure: the one line restore reports, from what the proxy answers afterwards (None: it did not answer)."""
    def passing(slot: str) -> bool:
        return servers is not None and slot in servers and servers[slot].check_passes

    if removed and passing(old):
        return f"restored: {old} is serving"
    if removed:
        return f"restore incomplete: {new} was removed, but the proxy's check of {old} does not pass"
    if passing(new):
        return f"restore incomplete: {old} is not healthy; {new} stays in rotation"
    return f"restore incomplete: neither slot is healthy; {new} stays in rotation"


def restore(target: Target, site: Site, proxy: Proxy, old: str | None, new: str, tags_: dict[str, str | None],
            switched: bool, say: Say) -> None:
    """Put back what was serving: the old slot live (restarted if needed) once healthy, within
    deploy.health_timeout, and only then the new slot removed; the line said is what the proxy reads back."""
    label = target.host.label
    wait_for_engine(target)
    with contextlib.suppress(DeliveryError, DockerException):
        if site.legacy is not None:
            target.docker.container.start(site.legacy.id)
    if not old:
        with contextlib.suppress(DeliveryError, DockerException):
            _remove(target, service_of(new), tags_)
        say(f"{label}: restored: {_serving(site, old)}")
        return
    old_container = site.web[old]
    with contextlib.suppress(DockerException):
        state = target.docker.container.inspect(old_container.id).state
        if state.status != "running":
            target.docker.container.start(old_container.id)
    removed = False
    if proxy.wait(target.config.health_timeout, lambda: proxy.server(old).check_passes):
        try:
            proxy.set(switch_command(old, None) + "; " + drain_command(new))
            if switched:
                proxy.drain(new, target.config.drain_timeout)
        except DeliveryError as exc:
            say(f"{label}: could not reset the proxy ({exc}); {old} is healthy, removing the new slot")
        with contextlib.suppress(DeliveryError, DockerException):
            _remove(target, service_of(new), tags_)
            removed = True
    else:
        say(f"{label}: {old} did not pass the proxy's check within deploy.health_timeout "
            f"({target.config.health_timeout:g}s); keeping {new}")
    try:
        servers = proxy.stats()
    except DeliveryError:
        servers = None
    say(f"{label}: {restore_outcome(servers, old, new, removed)}")


def wait_for_engine(target: Target, timeout: float = 90) -> None:
    """After an engine restart, wait until it answers again (up to `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            target.docker.system.info()
            return
        except DockerException:
            time.sleep(1)


def replace_cron(target: Target, tags_: dict[str, str | None], tag: str, previous: str | None, say: Say,
                 digests: frozenset[str] = frozenset(), ref: str | None = None) -> None:
    """Replace cron stop-first (a running job finishes or stops cleanly), putting the old one back on failure.
    The new cron starts from `ref` (`tag@sha256:...`, else `tag`), the old one again from `previous` (its own
    ref); like the web container, the new cron must run an image with one of `digests` (when given)."""
    tags_["cron"] = ref or tag
    was = tags.without_digest(previous) if previous else None
    say(f"{target.host.label}: replacing cron ({was or 'none'} -> {tag})")
    try:
        container = _up(target, CRON_SERVICE, tags_, say)
        healthy, why = wait_healthy(target.docker, container.id, target.config.health_timeout, say)
        if healthy and digests:
            if mismatch := image_mismatch(digests, container.image, image_digests(target.docker, container.image)):
                healthy, why = False, mismatch
    except DeliveryError as exc:
        healthy, why = False, str(exc)
    if healthy:
        return
    if previous and was != tag:
        tags_["cron"] = previous
        with contextlib.suppress(DeliveryError):
            _up(target, CRON_SERVICE, tags_, say)
        back = f"cron was put back on {was}"
    else:
        back = "no other cron was running before"
    raise CronFailed(f"cron of {tag} failed on {target.host.label}: {why}; the web app runs {tag}, {back}")


def deploy(target: Target, release: Release, say: Say) -> DeployReport:
    """Pull `release` (the image of the host's platform), then (under the host's deploy lock) hand over to it
    with zero downtime. A release without the host's platform stops here, before anything changes."""
    started = time.monotonic()
    variant = release.variant(target.info.platform, target.host.label)
    report = DeployReport(host=target.host.label, image=release.image, version=release.tag, digest=variant.manifest.digest,
                          platform=variant.platform, index_digest=variant.manifest.index_digest)
    plan = predict_pull(target, variant, release.image)
    report.store, report.total_layers, report.total_bytes = plan.store, plan.total_layers, plan.total_bytes
    report.predicted_layers, report.predicted_bytes = plan.pulled_layers, plan.pulled_bytes
    say(f"{target.host.label}: pulling {release.tag} for {variant.platform} ({plan.pulled_layers}/{plan.total_layers} layers to download)")
    seconds, measured = pull(target, release, say)
    report.pull_seconds = round(seconds, 2)
    report.measured_layers, report.measured_bytes = measured.layers, measured.bytes
    pin = pulled_pin(target, release, variant)  # the digest every container of this deploy starts from
    try:
        with deploy_lock(target.docker, target.config.compose_project, target.host.label, target.host_arg,
                         target.config.lock_wait, say):
            site = survey(target)
            report.previous = site.live_tag
            # An engine records the digest the tag names: the index's for a multi-platform release (then
            # the platform's image is checked too), the image manifest's otherwise.
            accept = frozenset(d for d in (variant.manifest.digest, variant.manifest.index_digest) if d)
            handover(target, site, release.tag, report, say, digests=accept, platform=variant.platform, pin=pin)
            report.healthy = True
            say(f"{target.host.label}: {release.tag} is live (healthy after {report.seconds_to_healthy}s)")
            report.pruned = prune_after_deploy(target, say)
    except CronFailed as exc:
        report.error = str(exc)
    except DeliveryError as exc:
        report.error = str(exc)
        if report.previous:  # set once the lock is held: the previous release never stopped serving
            report.rolled_back = True
            report.error += f"; {report.previous} is still serving"
    finally:
        report.seconds = round(time.monotonic() - started, 2)
    return report


def rollback(target: Target, say: Say, to: str | None = None) -> DeployReport:
    """Hand over to the release deployed before the current one (or `to`), from the image on the host (pulled
    again if the host lost it); recorded in the history once its web switch is final, even if its cron fails."""
    started = time.monotonic()
    with deploy_lock(target.docker, target.config.compose_project, target.host.label, target.host_arg,
                         target.config.lock_wait, say):
        site = survey(target)
        entries = history(target.docker, target.config.compose_project)
        current = site.live_tag or (entries[0].tag if entries else None)
        entry = rollback_target(entries, current, to)
        if entry is None:
            if to == current and to is not None:
                raise DeliveryError(f"{to} is already running on {target.host.label}")
            wanted = to or f"release older than {current}"
            raise DeliveryError(f"no {wanted} in the deploy history of {target.host.label}: see `invoke status --host {target.host_arg}`")
        image = tags.image_ref(target.config.registry, tags.APP_REPOSITORY, entry.tag)
        pulled = restore_image(target, entry, image, say)
        pin = recorded_pin(target, entry.tag, entry.image_id, image)
        report = DeployReport(host=target.host.label, image=image, version=entry.tag, digest="", previous=current)
        say(f"{target.host.label}: rolling back from {current or 'none'} to {entry.tag}" + ("" if pulled else " (no pull)"))
        try:  # what starts must be the recorded image (by ID): an image re-tagged since is refused before the switch
            container = handover(target, site, entry.tag, report, say, kind="rollback", digests=frozenset({entry.image_id}),
                                 pin=pin)
        except CronFailed as exc:
            report.error = str(exc)
            return report
        except DeliveryError as exc:
            report.error = f"rollback to {entry.tag} on {target.host.label} failed: {exc}" + (f"; {current} is still serving" if current else "")
            return report
        finally:
            report.seconds = round(time.monotonic() - started, 2)
        report.healthy = report.rolled_back = True
        report.digest = (image_digests(target.docker, container.image) or [""])[0]
        return report


def restore_image(target: Target, entry: HistoryEntry, image: str, say: Say) -> bool:
    """Tag the image of a history entry as its release again (the release tag may be gone); True if it had to be pulled.

    The history outlives the images (`docker image prune -a` removes them, not the history): then the
    release is pulled again, and must be the very image that ran here, else nothing changes.
    """
    docker, label = target.docker, target.host.label
    pulled = False
    with docker_errors(f"restoring the image of {entry.tag}"):
        if not docker.image.exists(entry.image_id):
            say(f"{label}: the image of {entry.tag} is no longer on the host (pruned?): pulling {image}")
            docker.image.pull(image, quiet=True)
            found = docker.image.inspect(image).id
            if found != entry.image_id:
                raise DeliveryError(f"{image} in the registry is not the image {entry.tag} ran on {label} ({found[:19]}, "
                                    f"not {entry.image_id[:19]}): nothing was changed; deploy a release instead")
            pulled = True
        docker.image.tag(entry.image_id, image)
    return pulled


def _container_status(target: Target, container: Any) -> dict[str, Any] | None:
    if container is None:
        return None
    state = container.state
    return {
        "tag": running_tag(container),
        "image": tags.without_digest(container.config.image),  # the digest has its own field
        "state": state.status,
        "health": state.health.status if state.health else None,
        "started_at": state.started_at.isoformat() if state.started_at else None,
        "digest": (image_digests(target.docker, container.image) or [None])[0],
    }


def status(target: Target) -> dict[str, Any]:
    """What runs on the host (proxy, live web slot, cron) and its deploy history."""
    site = survey(target)
    proxy = None
    if site.proxy is not None:
        proxy = {"image": site.proxy.config.image, "state": site.proxy.state.status,
                 "started_at": site.proxy.state.started_at.isoformat() if site.proxy.state.started_at else None}
    return {
        "host": target.host.label,
        "image_store": target.info.image_store,
        "platform": target.info.platform,
        "engine": target.info.server_version,
        "live_slot": site.live,
        "running": _container_status(target, site.live_container),
        "slots": {slot: _container_status(target, site.web.get(slot)) for slot in SLOTS},
        "cron": _container_status(target, site.cron),
        "proxy": proxy,
        "lock": lock_holder(target.docker, target.config.compose_project, target.host.label),
        "history": [asdict(e) for e in history(target.docker, target.config.compose_project)],
    }

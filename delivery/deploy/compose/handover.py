"""Deploying a release to Docker hosts with compose, with zero downtime: pull, lock, start the new
release beside the live one, switch the proxy to it once healthy, watch it, drain and stop the old
one, replace cron. A release that never gets healthy never receives a request.

This module holds the per-host entry points (`deploy`, `rollback`, `status`); the handover itself is
named steps over an explicit state (delivery/deploy/compose/steps.py, state.py), through a docker port
(ports.py) that unit tests fake. Pulling and pinning: pulling.py; health: health.py; the proxy's upkeep:
proxy_upkeep.py; the watch window: watch.py; cron: cron.py.

Host-side state (the deploy lock, delivery/hosts/lock.py; the deploy history, delivery/hosts/history.py)
lives on each host, so every operator's machine sees the same thing.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from python_on_whales import Container

from delivery.deploy.compose import steps
from delivery.deploy.compose.ports import ComposeDocker, Started
from delivery.deploy.compose.proxy_upkeep import read_servers
from delivery.deploy.compose.pulling import pull, pulled_pin, recorded_pin, restore_image
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.compose.state import Handover
from delivery.errors import CronFailed, DeliveryError
from delivery.hosts.history import history, record, rollback_target
from delivery.hosts.lock import deploy_lock, lock_holder
from delivery.hosts.retention import prune_after_deploy
from delivery.hosts.services import SLOTS
from delivery.hosts.site import Site, image_digests, running_tag, survey
from delivery.hosts.target import Target
from delivery.images import tags
from delivery.release.release import Release, predict_pull
from delivery.reporting import Reporter

__all__ = ["deploy", "handover", "record_switch", "rollback", "site_of", "status"]


def site_of(target: Target) -> Site:
    """What runs on the host now (delivery/hosts/site.py), the proxy asked which slot is live when both run."""
    return survey(target, read_servers(target))


def handover(target: Target, site: Site, tag: str, report: DeployReport, reporter: Reporter, digests: frozenset[str] = frozenset(),
             platform: str | None = None, kind: str = "deploy", pin: str | None = None) -> Started:
    """Start `tag` (by `pin`, `tag@sha256:...`, when given) in the free web slot beside the live one, switch the
    proxy to it once healthy, watch it, record it in the history as `kind` (the web switch is final), drain and
    stop the old slot, then replace cron (delivery/deploy/compose/steps.py). Returns the new web container."""
    state = Handover(ComposeDocker(target), reporter, target.host.label, target.config, site, tag, report,
                     kind=kind, digests=digests, platform=platform, pin=pin)
    return steps.run(state)


def deploy(target: Target, release: Release, reporter: Reporter) -> DeployReport:
    """Pull `release` (the image of the host's platform), then (under the host's deploy lock) hand over to it
    with zero downtime. A release without the host's platform stops here, before anything changes."""
    started = time.monotonic()
    report, pin, accept = _pulled(target, release, reporter)
    try:
        with deploy_lock(target.docker, target.config.compose_project, target.host.label, target.host_arg,
                         target.config.lock_wait, reporter):
            site = site_of(target)
            report.previous = site.live_tag
            handover(target, site, release.tag, report, reporter, digests=accept, platform=report.platform, pin=pin)
            report.healthy = True
            reporter.step(f"{target.host.label}: {release.tag} is live (healthy after {report.seconds_to_healthy}s)")
            report.pruned = prune_after_deploy(target, reporter)
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


def _pulled(target: Target, release: Release, reporter: Reporter) -> tuple[DeployReport, str, frozenset[str]]:
    """Predict and pull the host's platform's image of `release`: the report so far, the pin every container of the
    deploy starts from, and the digests the engine may record for it (an index's and its platform image's)."""
    variant = release.variant(target.info.platform, target.host.label)
    report = DeployReport(host=target.host.label, image=release.image, version=release.tag, digest=variant.manifest.digest,
                          platform=variant.platform, index_digest=variant.manifest.index_digest)
    plan = predict_pull(target, variant, release.image)
    report.store, report.total_layers, report.total_bytes = plan.store, plan.total_layers, plan.total_bytes
    report.predicted_layers, report.predicted_bytes = plan.pulled_layers, plan.pulled_bytes
    reporter.step(f"{target.host.label}: pulling {release.tag} for {variant.platform} ({plan.pulled_layers}/{plan.total_layers} layers to download)")
    seconds, measured = pull(target, release, reporter)
    report.pull_seconds = round(seconds, 2)
    report.measured_layers, report.measured_bytes = measured.layers, measured.bytes
    pin = pulled_pin(target, release, variant)  # the digest every container of this deploy starts from
    # An engine records the digest the tag names: the index's for a multi-platform release (then
    # the platform's image is checked too), the image manifest's otherwise.
    accept = frozenset(d for d in (variant.manifest.digest, variant.manifest.index_digest) if d)
    return report, pin, accept


def rollback(target: Target, reporter: Reporter, to: str | None = None) -> DeployReport:
    """Hand over to the release deployed before the current one (or `to`), from the image on the host (pulled
    again if the host lost it); recorded in the history once its web switch is final, even if its cron fails."""
    started = time.monotonic()
    label = target.host.label
    with deploy_lock(target.docker, target.config.compose_project, label, target.host_arg, target.config.lock_wait, reporter):
        site = site_of(target)
        entries = history(target.docker, target.config.compose_project)
        current = site.live_tag or (entries[0].tag if entries else None)
        entry = rollback_target(entries, current, to)
        if entry is None:
            if to == current and to is not None:
                raise DeliveryError(f"{to} is already running on {label}")
            wanted = to or f"release older than {current}"
            raise DeliveryError(f"no {wanted} in the deploy history of {label}: see `invoke status --host {target.host_arg}`")
        image = tags.image_ref(target.config.registry, tags.APP_REPOSITORY, entry.tag)
        pulled = restore_image(target, entry, image, reporter)
        pin = recorded_pin(target, entry.tag, entry.image_id, image)
        report = DeployReport(host=label, image=image, version=entry.tag, digest="", previous=current)
        reporter.step(f"{label}: rolling back from {current or 'none'} to {entry.tag}" + ("" if pulled else " (no pull)"))
        try:  # what starts must be the recorded image (by ID): an image re-tagged since is refused before the switch
            container = handover(target, site, entry.tag, report, reporter, kind="rollback", digests=frozenset({entry.image_id}),
                                 pin=pin)
        except CronFailed as exc:
            report.error = str(exc)
            return report
        except DeliveryError as exc:
            report.error = f"rollback to {entry.tag} on {label} failed: {exc}" + (f"; {current} is still serving" if current else "")
            return report
        finally:
            report.seconds = round(time.monotonic() - started, 2)
        report.healthy = report.rolled_back = True
        report.digest = (image_digests(target.docker, container.image) or [""])[0]
        return report


def record_switch(target: Target, kind: str, tag: str, container: Started, report: DeployReport, reporter: Reporter) -> None:
    """Record a final web switch in the host's history; a failure to record is a warning (the switch stands)."""
    steps.record_switch(lambda: record(target.docker, target.config.compose_project, kind, tag, container.image),
                        target.host.label, tag, report, reporter)


def _container_status(target: Target, container: Container | None) -> dict[str, Any] | None:
    if container is None:
        return None
    state = container.state
    return {
        "tag": running_tag(container),
        "image": tags.without_digest(str(container.config.image)),  # the digest has its own field
        "state": state.status,
        "health": state.health.status if state.health else None,
        "started_at": state.started_at.isoformat() if state.started_at else None,
        "digest": next(iter(image_digests(target.docker, container.image)), None),
    }


def status(target: Target) -> dict[str, Any]:
    """What runs on the host (proxy, live web slot, cron) and its deploy history."""
    site = site_of(target)
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

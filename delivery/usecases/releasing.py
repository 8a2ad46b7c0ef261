"""The release runbooks: deploy, rollback, status, unlock and prune on each host or swarm."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from python_on_whales.exceptions import DockerException

from delivery.config.hosts import Host
from delivery.config.settings import DeployConfig, load_config
from delivery.config.validation import keep_count, wait_seconds
from delivery.deploy.compose import handover as deploying
from delivery.deploy.compose.handover import DeployReport, Target, predict_pull, resolve_release
from delivery.deploy.swarm import rollout as swarming
from delivery.docker.engine import check_engine, connect, require_cli
from delivery.errors import DeliveryError
from delivery.hosts import retention
from delivery.hosts.lock import unlock as unlock_lock
from delivery.registry.client import Registry
from delivery.release.pullreport import human_bytes
from delivery.supply import refresh as refreshing
from delivery.usecases.context import ROOT, DeployFailed, current_version, each_host, hosts_from, login, login_scope, registry_for, say, settings


def deploy(section: Mapping[str, Any], hosts: Iterable[str] = (), version: str | None = None, dry_run: bool = False,
           lock_wait: str | float | None = None) -> list[dict[str, Any]]:
    """Deploy to each host in turn; stop at the first failure (its report says whether it rolled back)."""
    config, project = settings(section)
    if lock_wait is not None:  # --lock-wait over deploy.lock_wait
        config = dataclasses.replace(config, lock_wait=wait_seconds("--lock-wait", lock_wait))
    targets = hosts_from(config, hosts)  # validate every host before touching any
    require_cli()
    release = resolve_release(registry_for(config), config, version or current_version(project))

    def predict(target: Target) -> dict[str, Any]:
        variant = release.variant(target.info.platform, target.host.label)
        return {"host": target.host.label, "platform": variant.platform, **predict_pull(target, variant, release.image).prediction(),
                "dry_run": True}

    def deploy_one(target: Target) -> DeployReport:
        release.variant(target.info.platform, target.host.label)  # a release without the host's platform: nothing changes
        login(config, target.docker)  # the host pulls with the credentials of this machine's docker CLI
        return deploying.deploy(target, release, say)

    with login_scope(config):
        if config.mode == "swarm":
            return [swarm_run(config, targets, lambda manager: swarming.deploy(
                manager, config, ROOT, release, say, dry_run=dry_run, login=lambda docker: login(config, docker)))]
        return each_host(config, targets, predict if dry_run else deploy_one, "deploy")


def format_report(report: Mapping[str, Any]) -> str:
    if report.get("mode") == "swarm":
        return swarming.format_report(dict(report))
    if report.get("dry_run"):
        return (f"{report['host']}: {report['image']} would pull {report['predicted_layers']}/{report['total_layers']} layers, "
                f"{human_bytes(report['predicted_bytes'])} of {human_bytes(report['total_bytes'])} ({report['store']} store"
                + (f", {report['platform']})" if report.get("platform") else ")"))
    lines = [
        f"host            {report['host']} ({report['store']} image store" + (f", {report['platform']})" if report.get("platform") else ")"),
        f"image           {report['image']}",
        f"digest          {report['digest']}" + (f" (index {report['index_digest']})" if report.get("index_digest") else ""),
        f"previous        {report['previous'] or 'none'}",
        f"layers pulled   {report['predicted_layers']}/{report['total_layers']} predicted, {report.get('measured_layers', 0)} measured (engine's pull progress)",
        f"bytes pulled    {human_bytes(report['predicted_bytes'])} of {human_bytes(report['total_bytes'])} predicted, "
        f"{human_bytes(report.get('measured_bytes', 0))} measured (engine's pull progress, without the config)",
        f"pull time       {report['pull_seconds']:.2f}s",
        f"healthy after   {report['seconds_to_healthy']}s (slot {report['slot']})" if report["healthy"] or report.get("web_live")
        else f"healthy         no ({report['error']})",
    ]
    if report.get("switch_seconds") is not None:
        lines.append(f"switch          {report['switch_seconds']:.2f}s")
    if report.get("monitor"):
        watch = report["monitor"]
        lines.append(f"watch window    {watch['seconds']:.0f}s: {watch['requests']} requests, {watch['errors']} failed"
                     + (f" ({watch['note']})" if watch.get("note") else "")
                     + (" (switched back)" if watch.get("switched_back") else ""))
    if report.get("drain_seconds") is not None:
        lines.append(f"drain           {report['drain_seconds']:.2f}s")
    if report.get("proxy_restarts"):
        lines.append("proxy           restarted during the deploy (its restart policy brought it back)")
    if report.get("cron"):
        lines.append(f"cron            {report['cron']}")
    if report["rolled_back"] and not report["healthy"]:
        lines.append(f"still serving   {report['previous']}")
    lines.append(f"deploy time     {report.get('seconds', 0):.1f}s")
    return "\n".join(lines)


def rollback(section: Mapping[str, Any], hosts: Iterable[str] = (), to: str | None = None) -> list[dict[str, Any]]:
    config = load_config(section)
    if config.mode == "swarm" and to is not None:
        return deploy(section, hosts, to)

    def rollback_one(target: Target) -> DeployReport:
        login(config, target.docker)  # a release whose image the host lost is pulled again
        return deploying.rollback(target, say, to)

    with login_scope(config):
        if config.mode == "swarm":
            return [swarm_run(config, hosts_from(config, hosts), lambda manager: swarming.rollback(manager, config, say))]
        return each_host(config, hosts_from(config, hosts), rollback_one, "rollback")


def status(section: Mapping[str, Any], hosts: Iterable[str] = ()) -> list[dict[str, Any]]:
    config = load_config(section)
    if config.mode == "swarm":
        return [swarm_run(config, hosts_from(config, hosts), lambda manager: swarming.status(manager, config))]
    registry = registry_for(config)
    return each_host(config, hosts_from(config, hosts),
                     lambda target: with_freshness(target, {**deploying.status(target), "releases": retention.usage(target)}, registry),
                     "status")


def with_freshness(target: Target, entry: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The status entry plus the running image's base digest, deps age and newer deps image (delivery/supply/refresh.py)."""
    running = entry.get("running")
    if running:
        try:
            image = target.docker.image.inspect(running["image"])
            entry["deps"] = refreshing.deps_freshness(image.config.labels or {}, image.config.env or [], registry)
        except (DeliveryError, DockerException) as exc:  # status still answers with the registry down
            entry["deps"] = {"error": str(exc).splitlines()[0]}
    return entry


def swarm_run(config: DeployConfig, hosts: list[Host], action: Callable[[Host], Any]) -> dict[str, Any]:
    """deploy.mode swarm: run `action` through the one manager; a report that failed becomes DeployFailed."""
    if len(hosts) != 1:
        raise DeliveryError(f"deploy.mode is swarm: give one manager with --host (or deploy.hosts), not {len(hosts)} hosts")
    require_cli()
    result = action(hosts[0])
    if isinstance(result, swarming.SwarmReport):
        report = result.as_dict()
        if result.error:
            raise DeployFailed(result.error, [report])
        return report
    return result


def format_status(entry: Mapping[str, Any]) -> str:
    if entry.get("mode") == "swarm":
        return swarming.format_status(dict(entry))
    running = entry["running"]
    lines = [f"{entry['host']}  engine {entry['engine']}, {entry['image_store']} image store"
             + (f", {entry['platform']}" if entry.get("platform") else "")]
    if running:
        where = f"slot {entry['live_slot']}" if entry.get("live_slot") else "single container"
        lines.append(f"  live      {running['tag']}  {running['state']}/{running['health']}  {where}, since {running['started_at']}")
        lines.append(f"  digest    {running['digest']}")
    else:
        lines.append("  live      nothing (first deploy: `invoke deploy`)")
    for slot, info in (entry.get("slots") or {}).items():
        if info and slot != entry.get("live_slot"):
            lines.append(f"  {slot:<9} {info['tag']}  {info['state']}/{info['health']}  (not live: left by an interrupted deploy)")
    cron = entry.get("cron")
    lines.append(f"  cron      {cron['tag']}  {cron['state']}/{cron['health']}" if cron else "  cron      not running")
    proxy = entry.get("proxy")
    lines.append(f"  proxy     {proxy['image']}  {proxy['state']}  since {proxy['started_at']}" if proxy else "  proxy     not running")
    releases = entry.get("releases")
    if releases:
        lines.append(f"  releases  {releases['count']} on the host (keep_releases {releases['keep_releases']}), "
                     f"{human_bytes(releases['bytes'])} of images")
    if entry.get("deps"):
        lines.append(refreshing.format_freshness(entry["deps"]))
    if entry["lock"]:
        lines.append(f"  lock      {entry['lock']}")
    lines.append("  history (newest first):")
    for item in entry["history"][:10] or []:
        lines.append(f"    {item['time']}  {item['kind']:<8} {item['tag']}")
    if not entry["history"]:
        lines.append("    (none)")
    return "\n".join(lines)


def unlock(section: Mapping[str, Any], hosts: Iterable[str] = (), force: bool = False) -> list[str]:
    """Remove each host's stale deploy lock; a live holder's, or one that cannot be checked from here, only with `force`."""
    config = load_config(section)
    done: list[str] = []
    for host in hosts_from(config, hosts):
        docker = connect(host)
        check_engine(docker, host)
        try:
            done.append(unlock_lock(docker, config.compose_project, host.label, host.url or host.context or "local", force))
        except DeliveryError as exc:
            raise DeliveryError(f"{exc}" + (f" (done before it: {'; '.join(done)})" if done else "")) from exc
    return done


# -- day-2 operations ----------------------------------------------------------------------------
def prune(section: Mapping[str, Any], hosts: Iterable[str] = (), keep: str | int | None = None,
          dry_run: bool = False) -> list[dict[str, Any]]:
    """Keep the newest releases on each host (--keep, else deploy.keep_releases); prune the others."""
    config = load_config(section)
    count = config.keep_releases if keep is None else keep_count("--keep", keep)
    targets = hosts_from(config, hosts)
    return each_host(config, targets, lambda target: retention.prune(target, count, say, dry_run).as_dict(), "prune")


def format_prune(report: Mapping[str, Any]) -> str:
    why = report["why_kept"]
    kept = ", ".join(f"{tag} ({why[tag]})" if tag in why else tag for tag in report["kept"]) or "none"
    lines = [f"{report['host']}: keep {report['keep']}", f"  kept      {kept}",
             f"  pruned    {', '.join(report['pruned']) or 'nothing'}"]
    predicted = f"{human_bytes(report['predicted_freed_bytes'])} predicted"
    if report["dry_run"]:
        lines.append(f"  would free {predicted} (dry run: nothing removed)")
    elif report["freed_bytes"] is None:
        lines.append("  freed     0 B (nothing to remove)")
    else:
        lines.append(f"  freed     {human_bytes(report['freed_bytes'])} measured (docker system df before/after), {predicted}")
    lines += [f"  not removed: {error}" for error in report["errors"]]
    return "\n".join(lines)

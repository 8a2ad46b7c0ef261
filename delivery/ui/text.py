"""The text the tasks print for each result: build, deploy, dry run, rollback, status, prune, doctor.

Each formatter reads a typed report (a dataclass, or a TypedDict for the status entries), so a
renamed field fails in mypy; the `--json` output is the same report's as_dict(). A formatter
chooses by the report's type, never by deploy.mode.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from delivery.deploy.compose.report import DeployReport
from delivery.deploy.reports import Freshness, HostStatus, HostStatusEntry, PullPrediction, SwarmStatus, SwarmStatusEntry
from delivery.deploy.swarm.measure import SwarmReport
from delivery.hosts.retention import PruneReport
from delivery.release.pullreport import human_bytes
from delivery.ui.reports import DoctorResult


# -- build ----------------------------------------------------------------------------------------
def format_image(result: Mapping[str, Any]) -> str:
    """`invoke build-deps` and `build-app`: the image and its digest."""
    return f"{result['image']}\n{result['digest']}"


def format_audit(result: Mapping[str, Any]) -> str:
    return f"audit ok: {result['audited']} packages, {len(result['ignored'])} known vulnerabilities ignored until their dates"


def format_ci(result: Mapping[str, Any]) -> str:
    deps, app = result["deps"], result["app"]
    return f"deps {deps['image']} ({'built' if deps['built'] else 'unchanged'})\napp  {app['image']}\n     {app['digest']}"


# -- deploy and rollback ----------------------------------------------------------------------------
def format_report(report: DeployReport | PullPrediction | SwarmReport) -> str:
    """`invoke deploy`: a compose host's report, its dry run, or the swarm's report."""
    if isinstance(report, SwarmReport):
        return format_swarm_report(report)
    if isinstance(report, PullPrediction):
        return format_prediction(report)
    return format_deploy(report)


def format_prediction(prediction: PullPrediction) -> str:
    plan = prediction.plan
    return (f"{prediction.host}: {plan.image} would pull {plan.pulled_layers}/{plan.total_layers} layers, "
            f"{human_bytes(plan.pulled_bytes)} of {human_bytes(plan.total_bytes)} ({plan.store} store"
            + (f", {prediction.platform})" if prediction.platform else ")"))


def format_deploy(report: DeployReport) -> str:
    r = report
    lines = [
        f"host            {r.host} ({r.store} image store" + (f", {r.platform})" if r.platform else ")"),
        f"image           {r.image}",
        f"digest          {r.digest}" + (f" (index {r.index_digest})" if r.index_digest else ""),
        f"previous        {r.previous or 'none'}",
        f"layers pulled   {r.predicted_layers}/{r.total_layers} predicted, {r.measured_layers} measured (engine's pull progress)",
        f"bytes pulled    {human_bytes(r.predicted_bytes)} of {human_bytes(r.total_bytes)} predicted, "
        f"{human_bytes(r.measured_bytes)} measured (engine's pull progress, without the config)",
        f"pull time       {r.pull_seconds:.2f}s",
        f"healthy after   {r.seconds_to_healthy}s (slot {r.slot})" if r.healthy or r.web_live else f"healthy         no ({r.error})",
    ]
    if r.switch_seconds is not None:
        lines.append(f"switch          {r.switch_seconds:.2f}s")
    if r.monitor:
        watch = r.monitor
        lines.append(f"watch window    {watch['seconds']:.0f}s: {watch['requests']} requests, {watch['errors']} failed"
                     + (f" ({watch['note']})" if watch.get("note") else "")
                     + (" (switched back)" if watch.get("switched_back") else ""))
    if r.drain_seconds is not None:
        lines.append(f"drain           {r.drain_seconds:.2f}s")
    if r.proxy_restarts:
        lines.append("proxy           restarted during the deploy (its restart policy brought it back)")
    if r.cron:
        lines.append(f"cron            {r.cron}")
    if r.rolled_back and not r.healthy:
        lines.append(f"still serving   {r.previous}")
    lines.append(f"deploy time     {r.seconds:.1f}s")
    return "\n".join(lines)


def format_swarm_report(report: SwarmReport) -> str:
    def size(n: int | None) -> str:
        return "-" if n is None else human_bytes(n)

    r = report
    dry = r.update_state == "dry run"
    lines = [f"swarm           {r.manager} (stack {r.stack})", f"image           {r.image}", f"previous        {r.previous or 'none'}"]
    if dry:
        lines.append(f"proxy           {'would be replaced: ' + r.proxy_change if r.proxy_change else 'left as it is'} (predicted)")
        lines.append("predicted downloads per node (nothing changed):")
    lines.append(f"  {'node':<14} {'state':<7} {'predicted':>12} {'measured':>12} {'pull s':>7} tasks")
    for node in r.nodes:
        lines.append(f"  {node.node:<14} {node.state:<7} {size(node.predicted_bytes):>12} {size(node.measured_bytes):>12} "
                     f"{'-' if node.pull_seconds is None else format(node.pull_seconds, '.2f'):>7} {node.tasks}"
                     + (f"  ({node.note})" if node.note else ""))
    if not dry:
        lines.append(f"update          {r.update_state} in {r.update_seconds:.1f}s" + (f" ({r.update_message})" if r.update_message else ""))
        lines.append(f"cron            {r.cron_state}")
        lines.append(f"proxy           {r.proxy_state or 'left as it is'}" + (f" (replaced: {r.proxy_change})" if r.proxy_change else ""))
        if r.pre_pull:
            lines.append(f"pre-pull        {r.pre_pull_seconds:.1f}s before the update")
        for task in r.failed_tasks:
            lines.append(f"failed task     {task['service']} on {task['node']}: {task['state']} ({task['error']})")
        if r.nodes_down:
            lines.append(f"nodes down      {', '.join(r.nodes_down)}")
    return "\n".join(lines)


def format_rollback(report: DeployReport | SwarmReport) -> str:
    """`invoke rollback`: the release each host (or the swarm) runs now."""
    host = report.manager if isinstance(report, SwarmReport) else report.host
    return f"{host}: now running {report.version}"


# -- status -----------------------------------------------------------------------------------------
def format_status(status: HostStatus | SwarmStatus) -> str:
    """`invoke status`: a compose host's or the swarm's."""
    if isinstance(status, SwarmStatus):
        return format_swarm_status(status.entry)
    return format_host_status(status.entry)


def format_host_status(entry: HostStatusEntry) -> str:
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
        lines.append(format_freshness(entry["deps"]))
    if entry["lock"]:
        lines.append(f"  lock      {entry['lock']}")
    lines.append("  history (newest first):")
    for item in entry["history"][:10] or []:
        lines.append(f"    {item['time']}  {item['kind']:<8} {item['tag']}")
    if not entry["history"]:
        lines.append("    (none)")
    return "\n".join(lines)


def format_freshness(fresh: Freshness) -> str:
    """The deps lines of `invoke status`."""
    if fresh.get("error"):
        return f"  deps      unknown ({fresh['error']})"
    base = f"{fresh['base_name']}@{fresh['base_digest']}" if fresh.get("base_digest") else "unknown (built before digest tracking)"
    age = f"{fresh['age_days']} days (built {fresh['built_at']})" if fresh.get("age_days") is not None else "unknown (no SBOM)"
    newer = f"yes: {fresh['newer']} (rebuild the app: `invoke build-app`)" if fresh.get("newer") else "no"
    return f"  base      {base}\n  deps age  {age}\n  newer deps image  {newer}"


def format_swarm_status(entry: SwarmStatusEntry) -> str:
    lines = [f"swarm {entry['host']}  stack {entry['stack']}  nodes: " + ", ".join(f"{n} {v['state']}" for n, v in entry["nodes"].items())]
    for name, svc in entry["services"].items():
        lines.append(f"  {name:<6} {svc['tag']}  replicas {svc['replicas']}  update {svc['update_state']}")
        for node, counts in sorted(svc["per_node"].items()):
            digests = sorted({t["digest"] or "?" for t in svc["tasks"] if t["node"] == node})
            checked = any(t["health"] != "no healthcheck" for t in svc["tasks"] if t["node"] == node)
            health = f"{counts['healthy']} healthy" if checked else "no healthcheck"
            lines.append(f"    {node:<14} {counts['running']} running, {health}  {', '.join(d[:19] for d in digests)}")
    if not entry["services"]:
        lines.append("  nothing deployed (first deploy: `invoke deploy`)")
    return "\n".join(lines)


# -- prune and doctor -------------------------------------------------------------------------------
def format_prune(report: PruneReport) -> str:
    why = report.why_kept
    kept = ", ".join(f"{tag} ({why[tag]})" if tag in why else tag for tag in report.kept) or "none"
    lines = [f"{report.host}: keep {report.keep}", f"  kept      {kept}",
             f"  pruned    {', '.join(report.pruned) or 'nothing'}"]
    predicted = f"{human_bytes(report.predicted_freed_bytes)} predicted"
    if report.dry_run:
        lines.append(f"  would free {predicted} (dry run: nothing removed)")
    elif report.freed_bytes is None:
        lines.append("  freed     0 B (nothing to remove)")
    else:
        lines.append(f"  freed     {human_bytes(report.freed_bytes)} measured (docker system df before/after), {predicted}")
    lines += [f"  not removed: {error}" for error in report.errors]
    return "\n".join(lines)


def format_doctor(result: DoctorResult) -> str:
    b = result["builder"]
    lines = [
        f"builder       {b['name']} ({b['driver']} driver, {b['status'] or 'status unknown'})",
        f"BuildKit      {b['buildkit']}",
        f"engine        Docker Engine {b['engine']}, {b['image_store']} image store",
        f"build path    {b['path']}: " + ("reproducible OCI layout, pushed by the toolkit (same commit, same digest)"
                                          if b["reproducible"] else "built into the engine, pushed with docker push"),
    ]
    if not b["reproducible"]:
        lines.append(f"loses         {b['loses']}")
        lines.append(f"reproducible  {b['to_reproducible']}")
    if result.get("platforms"):
        lines.append(f"platforms     {', '.join(result['platforms'])} (deploy.platforms); this builder can build "
                     f"{', '.join(result.get('buildable') or []) or 'none of them'}")
    if result.get("platforms_problem"):
        lines.append(f"cannot build  {result['platforms_problem']}")
    lines.append(f"registry      {result['registry']}")
    return "\n".join(lines)

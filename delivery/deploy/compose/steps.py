"""The handover on a compose host, as named steps over its explicit state (delivery/deploy/compose/state.py):

    keep_proxy_current, take_out_free_slot,
    start_new, wait_new_healthy, replace_legacy_layout, switch, watch_new   (any failure here: restore)
    record_final, retire_old, note_proxy_restarts, swap_cron

Whatever fails before the switch is final (recorded), what was serving keeps serving: `restore` puts the
old slot back in front, once healthy, and only then removes the new one. After it, nothing switches back;
a cron that fails is reported (CronFailed), the web switch stays. Each step works through the handover's
DockerPort and ProxyPort (delivery/deploy/compose/ports.py), which unit tests fake.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import NoReturn

from python_on_whales.exceptions import DockerException

from delivery.deploy.compose.cron import replace_cron
from delivery.deploy.compose.health import image_mismatch, platform_mismatch
from delivery.deploy.compose.ports import Started
from delivery.deploy.compose.proxy import drain_command, hold_command, switch_command, window_failure
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.compose.state import Handover
from delivery.deploy.compose.watch import restore_outcome, watch
from delivery.docker.engine import last_line
from delivery.errors import CronFailed, DeliveryError, HandoverFailed
from delivery.hosts.services import LEGACY_SERVICE, service_of
from delivery.interrupts import shielded
from delivery.reporting import Reporter


def run(h: Handover) -> Started:
    """The whole handover; returns the new web container. Raises HandoverFailed (or DeliveryError) after
    restoring, or CronFailed (the web switch stays, and stays recorded)."""
    keep_proxy_current(h)
    take_out_free_slot(h)
    try:
        container = start_new(h)
        wait_new_healthy(h)
        replace_legacy_layout(h)
        switch(h)
        watch_new(h)
    except BaseException as exc:
        restore_after(h, exc)
    # The new release serves and passed its watch window: from here on, nothing switches back.
    record_final(h)
    retire_old(h)
    note_proxy_restarts(h)
    swap_cron(h)
    return container


def keep_proxy_current(h: Handover) -> None:
    """Start the proxy, or keep it current; not while the single-container layout holds the port (replace_legacy_layout)."""
    if h.site.legacy is None:
        h.port.ensure_proxy(h.site, h.tags, h.reporter)


def take_out_free_slot(h: Handover) -> None:
    """Hold the free slot out of the proxy's rotation (no requests until it is switched in), and only then
    remove what an interrupted deploy left in it, once its requests in flight are done (up to deploy.drain_timeout):
    the proxy may still send it requests (it was switched in, or the proxy restarted and forgot the hold)."""
    proxy, new = h.proxy, h.new
    if h.old and proxy.container:
        proxy.set(hold_command(new))
    if new not in h.site.web:
        return
    h.say(f"removing {service_of(new)}, left by an interrupted deploy (held out of rotation first)")
    if h.old and proxy.container:
        proxy.wait(h.config.drain_timeout, lambda: proxy.server(new).in_flight == 0)
    h.port.remove(service_of(new), h.tags)


def start_new(h: Handover) -> Started:
    """Start the release in the free slot, beside the live one."""
    h.say(f"starting {h.tag} in slot {h.new} (live: {h.old or 'none'}, {h.site.live_tag or 'nothing'})")
    h.started_at = h.clock()
    h.container = h.port.up(service_of(h.new), h.tags)
    return h.container


def wait_new_healthy(h: Handover) -> None:
    """Until the new container is healthy and runs the release (its digest, the host's platform); else its last
    log lines, and HandoverFailed."""
    container = _started(h)
    healthy, why = h.port.wait_healthy(container.id, h.config.health_timeout, h.reporter)
    if healthy and h.digests:  # the platform's manifest digest (or its index's, for a tag that names an index)
        running, runs_on = h.port.running_image(container.image)
        if mismatch := image_mismatch(h.digests, container.image, running) or platform_mismatch(runs_on, h.platform):
            healthy, why = False, mismatch
    if not healthy:
        h.say(f"{h.tag} is not healthy ({why}); last log lines:")
        for line in h.port.log_tail(container.id):
            h.reporter.step(f"  | {line}")
        raise HandoverFailed(f"{h.tag} failed on {h.label}: {why}")
    h.ready_at = h.clock()
    h.report.seconds_to_healthy = round(h.ready_at - h.started_at, 2)


def replace_legacy_layout(h: Handover) -> None:
    """The old single-container layout holds the port: swap it for the proxy (once the new release is healthy)."""
    if h.site.legacy is None:
        return
    h.say(f"replacing the single-container layout ({LEGACY_SERVICE}) with the proxy")
    h.port.stop_legacy(h.site.legacy.id)
    h.port.ensure_proxy(h.site, h.tags, h.reporter)


def switch(h: Handover) -> None:
    """Once the proxy's own check of the new slot passes, send requests to it; the old one stays behind it."""
    if not h.proxy.wait_passing(h.new, timeout=max(10.0, h.config.health_timeout / 3)):
        raise HandoverFailed(f"{h.tag} failed on {h.label}: healthy in its container, but the proxy's check of slot {h.new} does not pass")
    h.proxy.set(switch_command(h.new, h.old))
    h.switched = True
    h.report.switch_seconds = round(h.clock() - h.ready_at, 3)
    h.say(f"proxy switched to {h.new} ({h.tag}) in {h.report.switch_seconds:.2f}s")


def watch_new(h: Handover) -> None:
    """The watch window (deploy.monitor seconds, when something served before): HandoverFailed when it fails."""
    config = h.config
    if not h.old or config.monitor <= 0:
        return
    container = _started(h)
    observed = watch(h.proxy, h.new, config.monitor, h.reporter, h.label,
                     state=lambda: h.port.container_state(container.id),
                     min_requests=config.watch_min_requests,
                     check_timeout=max(10.0, config.health_timeout / 3), sleep=h.sleep, clock=h.clock)
    h.report.monitor = observed.as_dict() | {"switched_back": False}
    if failure := window_failure(observed, config.max_error_rate, config.watch_min_requests):
        h.report.monitor["switched_back"] = True
        raise HandoverFailed(f"{h.tag} failed on {h.label}: {failure} in the {config.monitor:g}s watch window; switched back")


def restore_after(h: Handover, exc: BaseException) -> NoReturn:
    """Restore (a signal now, a cancelled CI job's second one, does not cut it short), then raise: a DeliveryError
    as it is, a docker failure as HandoverFailed, anything else (an interrupt) as it is."""
    h.report.proxy_restarts = h.proxy.restarts
    with shielded():
        restore(h)
    if isinstance(exc, DockerException):
        raise HandoverFailed(f"{h.tag} failed on {h.label}: {last_line(exc)}") from exc
    raise exc


def restore(h: Handover) -> None:
    """Put back what was serving: the old slot live (restarted if needed) once healthy, within
    deploy.health_timeout, and only then the new slot removed; the line said is what the proxy reads back."""
    port, old, new = h.port, h.old, h.new
    port.wait_for_engine()
    if h.site.legacy is not None:
        with contextlib.suppress(DeliveryError):
            port.start(h.site.legacy.id)
    if not old:
        with contextlib.suppress(DeliveryError):
            port.remove(service_of(new), h.tags)
        h.say(f"restored: {_serving(h)}")
        return
    with contextlib.suppress(DeliveryError):
        if not port.is_running(h.site.web[old].id):
            port.start(h.site.web[old].id)
    removed = _put_old_back(h, old, new)
    try:
        servers = h.proxy.stats()
    except DeliveryError:
        servers = None
    h.say(restore_outcome(servers, old, new, removed))


def _put_old_back(h: Handover, old: str, new: str) -> bool:
    """Once the old slot passes the proxy's check: it alone in rotation, the new slot drained and removed (True)."""
    proxy, config = h.proxy, h.config
    if not proxy.wait(config.health_timeout, lambda: proxy.server(old).check_passes):
        h.say(f"{old} did not pass the proxy's check within deploy.health_timeout ({config.health_timeout:g}s); keeping {new}")
        return False
    try:
        proxy.set(switch_command(old, None) + "; " + drain_command(new))
        if h.switched:
            proxy.drain(new, config.drain_timeout)
    except DeliveryError as exc:
        h.say(f"could not reset the proxy ({exc}); {old} is healthy, removing the new slot")
    try:
        h.port.remove(service_of(new), h.tags)
    except DeliveryError:
        return False
    return True


def record_final(h: Handover) -> None:
    """The web switch is final: recorded in the host's history as the handover's kind."""
    container = _started(h)
    record_switch(lambda: h.port.record(h.kind, h.tag, container.image), h.label, h.tag, h.report, h.reporter)


def record_switch(record: Callable[[], None], label: str, tag: str, report: DeployReport, reporter: Reporter) -> None:
    """Record a final web switch; a failure to record is a warning (the switch stands)."""
    report.web_live = True
    try:
        record()
    except DeliveryError as exc:
        reporter.step(f"{label}: warning: {tag} serves, but {exc}; `invoke rollback` does not know it serves")


def retire_old(h: Handover) -> None:
    """Drain and remove the old slot (and the single-container layout's container); a failure is a warning."""
    old = h.old
    try:
        if old:
            seconds, left = h.proxy.drain(old, h.config.drain_timeout)
            h.report.drain_seconds = round(seconds, 2)
            h.say(f"drained {old} in {seconds:.1f}s" + (f" ({left} requests still in flight, stopped anyway)" if left else ""))
            h.port.remove(service_of(old), h.tags)
        if h.site.legacy is not None:
            h.port.remove_legacy(h.site.legacy.id)
    except (DeliveryError, DockerException) as exc:
        leftover = service_of(old) if old else LEGACY_SERVICE
        h.say(f"warning: {h.tag} serves, but removing the old {leftover} failed ({exc}); the next deploy removes it")


def note_proxy_restarts(h: Handover) -> None:
    h.report.proxy_restarts = h.proxy.restarts
    if h.proxy.restarts:
        h.say("the proxy restarted during the deploy (its restart policy brought it back); its state was applied again")


def swap_cron(h: Handover) -> None:
    """Replace cron, stop-first: a signal must not leave the host with no cron. Its outcome goes in the report."""
    try:
        with shielded():
            replace_cron(h)
    except CronFailed as exc:
        h.report.cron = f"failed: {exc}"
        raise
    h.report.cron = f"runs {h.tag}"


def _started(h: Handover) -> Started:
    if h.container is None:
        raise HandoverFailed(f"{h.tag} failed on {h.label}: no new container was started")
    return h.container


def _serving(h: Handover) -> str:
    site = h.site
    return f"{site.live_tag} is serving" if h.old or site.legacy is not None else "nothing was serving before"

"""The watch window after the proxy switched to the new release, and the line a restore reports.

`watch` reads what the proxy counts for the new slot over deploy.monitor seconds; it fails closed.
Its verdict is `window_failure` (delivery/deploy/compose/proxy.py); `restore_outcome` is pure.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from delivery.deploy.compose.health import ContainerState, container_problem
from delivery.deploy.compose.ports import ProxyPort
from delivery.deploy.compose.proxy import ServerStats, Window, window
from delivery.errors import DeliveryError
from delivery.reporting import Reporter

NO_TRAFFIC = "no traffic in the watch window: passed on the proxy's health checks only"


@dataclass
class _Reads:
    """The proxy's stats of one slot, read during the window: how many reads, how many failed, the last error."""

    proxy: ProxyPort
    slot: str
    reads: int = 0
    failed: int = 0
    last_error: str = ""

    def read(self) -> ServerStats | None:
        self.reads += 1
        try:
            return self.proxy.server(self.slot)
        except DeliveryError as exc:
            self.failed += 1
            self.last_error = str(exc)
            return None


def watch(proxy: ProxyPort, slot: str, seconds: float, reporter: Reporter, label: str,
          state: Callable[[], ContainerState] | None = None, min_requests: int = 0,
          check_timeout: float = 10.0, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> Window:
    """The watch window: what the proxy counts for `slot` over `seconds` after the switch. It fails closed:
    a Window with a `problem` when its stats cannot be read at its start or end, or when `state` (the new
    container's) says it exited or restarted. With no traffic and no minimum, it passes only if the proxy's
    own health check of `slot` passes (within `check_timeout`), and its `note` says so."""
    reporter.step(f"{label}: watching {slot} for {seconds:g}s (old release kept behind it)")
    started = clock()
    stats = _Reads(proxy, slot)
    before = state() if state is not None else None

    def checked() -> str | None:
        if state is None or before is None:
            return None
        try:
            return container_problem(before, state())
        except DeliveryError as exc:
            return f"the new container cannot be inspected ({exc})"

    first = last = stats.read()
    problem = None
    while clock() - started < seconds:
        sleep(min(1.0, max(0.0, seconds - (clock() - started))))
        if problem := checked():
            break
        last = stats.read()
    elapsed = clock() - started
    if problem is None and (first is None or last is None):
        problem = f"stats unreadable: {stats.failed} of {stats.reads} reads failed ({stats.last_error})"
    counted = window(first, last, elapsed) if first is not None and last is not None else Window(elapsed, 0, 0)
    note = None
    if problem is None and counted.requests == 0 and min_requests == 0:
        if proxy.wait_passing(slot, check_timeout):
            note = NO_TRAFFIC
        else:
            problem = f"no traffic in the watch window, and the proxy's health check of {slot} does not pass"
    observed = Window(counted.seconds, counted.requests, counted.errors, stats.failed, problem, note)
    reporter.step(f"{label}: {observed.requests} requests, {observed.errors} failed ({observed.error_rate:.1%})"
                  + (f", {stats.failed} of {stats.reads} stats reads failed" if stats.failed else "")
                  + (f"; {problem}" if problem else "") + (f"; {note}" if note else ""))
    return observed


def restore_outcome(servers: Mapping[str, ServerStats] | None, old: str, new: str, removed: bool) -> str:
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

"""SIGINT, SIGTERM and SIGHUP during a deploy, a rollback or a prune: the same restore as an error.

Python ends a process on SIGTERM or SIGHUP without running a single `finally`: a CI job that is
cancelled (SIGINT, then SIGTERM seconds later) or an SSH session that drops would leave the
deploy lock held, cron stopped and the history unrecorded. `restoring_on_signals` turns the first
of these signals into an `Interrupted` exception raised where the task is, so the handover's
restore, the lock's release and every other cleanup run as they do for an error. A second
signal while that cleanup runs does not stop it: it is said in one line and the cleanup goes on.
The cleanup is bounded (docs/operations.md, "Interruptions"): at most deploy.health_timeout for
the old slot plus deploy.drain_timeout, well inside the grace period of CI runners.
"""
from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from delivery.errors import Interrupted
from delivery.reporting import Reporter

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SignalRelay:
    """Pure state of the handler: the first signal raises, later ones are only said; while `shielded`
    (a restore running), none raises: the first is raised when the restore is done."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.shields = 0
        self.pending: int | None = None  # a signal received while shielded, raised when the shield ends
        self.raised = False

    def __call__(self, signum: int, frame: object = None) -> None:
        name = signal.Signals(signum).name
        if self.shields:
            self.pending = self.pending or signum
            self.reporter.step(f"{name}: restoring what was serving first, then the task ends")
        elif not self.raised:
            self.raised = True
            raise Interrupted(signum)
        else:
            self.reporter.step(f"{name} again: still cleaning up, then the task ends")

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        self.shields += 1
        try:
            yield
        finally:
            self.shields -= 1
        if not self.shields and self.pending is not None and not self.raised:
            self.raised = True
            raise Interrupted(self.pending)


_active: list[SignalRelay] = []


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Within: a signal does not interrupt (a restore is running); outside any task's relay, nothing changes."""
    if not _active:
        yield
        return
    with _active[-1].shielded():
        yield


@contextlib.contextmanager
def restoring_on_signals(reporter: Reporter) -> Iterator[SignalRelay]:
    """Within: SIGINT, SIGTERM and SIGHUP raise Interrupted once; the previous handlers come back after."""
    relay = SignalRelay(reporter)
    previous = {sig: signal.signal(sig, relay) for sig in SIGNALS}
    _active.append(relay)
    try:
        yield relay
    finally:
        _active.remove(relay)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

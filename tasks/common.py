"""What every task shares: one-line errors, the restore on a signal, and the help texts several tasks use."""
from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from invoke import Exit

from delivery.errors import DeliveryError, DeployFailed, Interrupted
from delivery.interrupts import restoring_on_signals
from delivery.ui.progress import STDERR, one_or_many

Task = Callable[..., Any]

NO_CACHE = "Build without the builder's cache, as a fresh CI runner would (same digest: builds are reproducible)."
HOSTS = "Host(s), as for deploy."


def user_errors(fn: Task) -> Task:
    """One line and exit 1 for errors a user can fix (with --json, the reports so far on stdout)."""

    @functools.wraps(fn)
    def wrapper(c: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(c, *args, **kwargs)
        except DeployFailed as exc:
            if kwargs.get("json"):
                print(json.dumps(one_or_many(exc.reports), indent=2, sort_keys=True))
            raise Exit(f"error: {exc}", code=1) from None
        except DeliveryError as exc:
            raise Exit(f"error: {exc}", code=1) from None

    return wrapper


def _on_interrupt(after: str) -> Callable[[Task], Task]:
    def decorate(fn: Task) -> Task:
        @functools.wraps(fn)
        def wrapper(c: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                with restoring_on_signals(STDERR):
                    return fn(c, *args, **kwargs)
            except Interrupted as exc:
                raise Exit(f"error: {fn.__name__.replace('_', '-')} {exc}: {after}", code=exc.exit_code) from None

        return wrapper

    return decorate


# SIGINT, SIGTERM and SIGHUP during the task: the same restore (or cleanup) as an error, then one line and 128+signal.
restoring_on_interrupt = _on_interrupt("cleaned up as after an error (the lines above say what serves); check with `invoke status`")
# The build tasks: their private docker login (delivery/docker/engine.py) goes with them.
cleaning_up_on_interrupt = _on_interrupt("cleaned up as after an error")

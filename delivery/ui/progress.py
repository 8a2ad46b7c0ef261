"""Progress and results as a terminal user sees them: steps on stderr, results on stdout (JSON with --json).

Progress goes to stderr and results to stdout, so scripts can read the results (`--json`)
while people watch the steps.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from delivery.deploy.reports import Reportable


class StderrReporter:
    """The Reporter users see: each step one line on stderr, flushed at once (delivery.reporting.Reporter)."""

    def step(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


STDERR = StderrReporter()


R = TypeVar("R", bound=Reportable)


def emit(result: Any, as_json: bool, human: str) -> None:
    """Print a task's result: `human` text, or with --json the result as JSON (sorted keys, indented)."""
    print(json.dumps(result, indent=2, sort_keys=True) if as_json else human, flush=True)


def one_or_many(reports: Sequence[Any]) -> Any:
    """The JSON of a task's per-host results: one host's report itself, several as {"hosts": [...]}."""
    return reports[0] if len(reports) == 1 else {"hosts": list(reports)}


def emit_reports(reports: Sequence[R], as_json: bool, text: Callable[[R], str], separator: str = "\n\n") -> None:
    """Print typed per-host reports: each as `text`, or with --json their as_dict() (one_or_many)."""
    emit(one_or_many([r.as_dict() for r in reports]), as_json, separator.join(text(r) for r in reports))

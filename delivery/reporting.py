"""Progress of long work: the Reporter every layer announces its steps to.

The runbooks (delivery/usecases) hand a Reporter down; delivery/ui/ implements the one users
see (stderr, one line per step). Lower layers only know this protocol, so they never print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Reporter(Protocol):
    """Where progress goes: one line per step, as it happens."""

    def step(self, message: str) -> None: ...


@dataclass
class Recorded:
    """A Reporter that keeps every line: the double unit tests read."""

    lines: list[str] = field(default_factory=list)

    def step(self, message: str) -> None:
        self.lines.append(message)


class Silent:
    """A Reporter that drops every line (work whose progress nobody watches)."""

    def step(self, message: str) -> None:
        return None

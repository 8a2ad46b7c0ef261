"""Which Dockerfile steps a BuildKit build ran, read from its plain-progress log.

The log names each step once (`#7 [deps 1/1] COPY --link ...`) and later gives its
outcome on a line of the same number: `#7 CACHED`, or `#7 DONE 0.4s` when it ran.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

STEP_LINE = re.compile(r"^#(\d+) \[(?P<stage>[\w.-]+) (?P<index>\d+)/(?P<count>\d+)\] (?P<instruction>.+)$")
OUTCOME_LINE = re.compile(r"^#(\d+) (?P<outcome>CACHED|DONE|ERROR|CANCELED)\b")


@dataclass(frozen=True)
class BuildStep:
    """One Dockerfile instruction of a named stage and what the build did with it."""

    stage: str
    instruction: str
    cached: bool

    @property
    def is_from(self) -> bool:
        """FROM only resolves the base image: the log never marks it CACHED."""
        return self.instruction.startswith("FROM ")

    @property
    def ran(self) -> bool:
        return not self.cached and not self.is_from

    def __str__(self) -> str:
        return f"[{self.stage}] {self.instruction[:100]} ({'CACHED' if self.cached else 'ran'})"


def build_steps(log_lines: Iterable[str]) -> list[BuildStep]:
    """The Dockerfile steps of a plain-progress log, in the order the log names them."""
    named: dict[str, tuple[str, str]] = {}
    outcomes: dict[str, str] = {}
    for raw in log_lines:
        line = raw.rstrip("\n")
        if step := STEP_LINE.match(line):
            named.setdefault(step.group(1), (step["stage"], step["instruction"]))
        elif outcome := OUTCOME_LINE.match(line):
            outcomes.setdefault(outcome.group(1), outcome["outcome"])
    return [
        BuildStep(stage, instruction, outcomes.get(number) == "CACHED")
        for number, (stage, instruction) in named.items()
    ]

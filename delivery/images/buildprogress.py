"""BuildKit's plain progress, read line by line: what to show while a build runs, and what to say when it fails.

Shown: each step as it starts, how long the slow ones took, errors, and for a
long step (a dependency install) its latest output line every `heartbeat`
seconds, so a user sees it move. When the build fails, `failure` makes the one
error line: the failing step, its telling output line, and what to do.
"""
from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable

from delivery.reporting import Reporter

_STEP = re.compile(r"^(#\d+) (.*)$")
_OUTPUT = re.compile(r"^\d+(?:\.\d+)? ")  # "12.34 Collecting fastapi": a step's output, timed
_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")
SLOW_STEP_SECONDS = 1.0

# (words in the failing step's output or the error, what to do), most specific first.
HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("no space left on device",), "free disk space on the builder (`docker builder prune`), then run the task again"),
    (("certificate verify failed", "certificate_verify_failed", "self-signed certificate", "sslerror"),
     "TLS to the package index failed: set deploy.ca_bundle to your proxy's CA bundle, then run the task again"),
    (("hashes are not", "do not match the hashes", "could not find a version", "no matching distribution"),
     "requirements.lock does not match the index: re-lock (`invoke lock`), commit, then run the task again"),
    (("temporary failure in name resolution", "max retries exceeded", "connection refused", "network is unreachable",
      "could not resolve host", "failed to fetch", "connection timed out", "read timed out"),
     "the build could not reach the network: check the builder's network and proxy "
     "(deploy.ca_bundle, deploy.pip_index_url_file), then run the task again"),
    (("oci exporter is not supported", "exporter is not supported"),
     "this builder cannot write OCI layouts: run `invoke doctor`, it names the fix"),
    (("failed to resolve source metadata", "pull access denied", ": not found", "manifest unknown"),
     "the builder cannot get an image the Dockerfile starts FROM: set deploy.python_image to one it can pull "
     "(the app image needs `invoke build-deps` first)"),
)
DEFAULT_HINT = "fix what that step printed above, then run the task again"


def hint_for(text: str) -> str:
    """Pure: what to do about a failure whose output (lower-cased here) is `text`."""
    lowered = text.lower()
    for words, hint in HINTS:
        if any(word in lowered for word in words):
            return hint
    return DEFAULT_HINT


class BuildProgress:
    """Feed it every line of `docker buildx build --progress plain`; it reports the worth-showing ones."""

    def __init__(self, report: Reporter, heartbeat: float = 15.0, clock: Callable[[], float] = time.monotonic):
        self.report, self.heartbeat, self.clock = report, heartbeat, clock
        self.steps: dict[str, str] = {}  # "#5" -> "[deps 1/3] RUN ..."
        self.output: dict[str, deque[str]] = {}  # the last output lines of each step
        self.failed: str | None = None  # the first step that reported ERROR
        self.last_shown: dict[str, float] = {}
        self.final_errors: list[str] = []

    def feed(self, line: str) -> None:
        text = line.strip()
        match = _STEP.match(text)
        if not match:
            if text.startswith("ERROR"):
                self.final_errors.append(text)
                self.report.step(text)
            return
        step, rest = match.groups()
        if step not in self.steps and rest.startswith("["):
            self.steps[step] = " ".join(rest.split())  # a RUN's line continuations leave runs of spaces
            self.last_shown[step] = self.clock()
            self.report.step(text)
        elif rest.startswith("ERROR"):
            self.failed = self.failed or step
            self.output.setdefault(step, deque(maxlen=20)).append(rest)
            self.report.step(text)
        elif _OUTPUT.match(rest):
            output = _OUTPUT.sub("", rest, count=1)
            self.output.setdefault(step, deque(maxlen=20)).append(output)
            if "ERROR" in output:
                self.report.step(text)
            elif step in self.steps and self.clock() - self.last_shown.get(step, 0.0) >= self.heartbeat:
                self.last_shown[step] = self.clock()
                self.report.step(text)
        else:
            done = _DONE.match(rest)
            if done and step in self.steps and float(done.group(1)) >= SLOW_STEP_SECONDS:
                self.report.step(text)

    def failure(self, action: str, reason: str) -> str:
        """The one error line of a failed build: `reason` is the docker command's last error line."""
        step = self.steps.get(self.failed or "")
        lines = list(self.output.get(self.failed or "", ()))
        telling = next((line for line in reversed(lines) if _is_telling(line)), None)
        everything = "\n".join([*lines, *self.final_errors, reason])
        where = f" at step {step}" if step else ""
        why = telling or _short(reason)
        return f"{action} failed{where}: {why}: {hint_for(everything)}"


def _is_telling(line: str) -> bool:
    """An output line worth quoting: an error message, not BuildKit's "did not complete successfully" echo."""
    lowered = line.lower()
    return ("error" in lowered or "failed" in lowered) and "did not complete successfully" not in lowered


def _short(reason: str) -> str:
    return reason.removeprefix("ERROR: ").removeprefix("failed to solve: ").strip()

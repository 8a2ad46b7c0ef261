"""A throwaway git clone of the project, where each scenario's change is made and committed.

The clone starts as the source repository's HEAD with its working tree copied
over (tracked and untracked, not ignored files) and committed, so the clone's own
tasks/ and delivery packages build it. The source repository is never written.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from benchmarks import scenarios
from dockerbed import BedError, worktree


class BenchmarkError(Exception):
    """Something the person running the benchmark can fix; one line, no traceback."""


def git(root: Path, *args: str) -> str:
    try:
        return worktree.git(root, *args)
    except BedError as error:
        raise BenchmarkError(str(error)) from None


class Clone:
    """A temporary clone of `source` at its working tree state, committed as one commit."""

    def __init__(self, source: Path, run_id: str, uv: Path, ca_bundle: str | None, layer_order: tuple[str, ...] | None = None):
        self.source = source
        self.run_id = run_id
        self.uv = uv
        self.ca_bundle = ca_bundle
        self._tmp = tempfile.TemporaryDirectory(prefix="production-control-bench-")
        self.path = Path(self._tmp.name) / "repo"
        self.releases = 0
        self.layer_order = layer_order

    def __enter__(self) -> Clone:
        try:
            worktree.clone(self.source, self.path, f"benchmark {self.run_id}: working tree of {self.source}", user="benchmark")
        except BedError as error:
            raise BenchmarkError(str(error)) from None
        if self.layer_order:
            layers = self.path / "deps" / "layers.toml"
            layers.write_text(scenarios.reorder_layers(layers.read_text(), self.layer_order))
            self.commit(f"benchmark {self.run_id}: layer order {', '.join(self.layer_order)}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()

    # -- facts ----------------------------------------------------------------------
    @property
    def commit_id(self) -> str:
        return git(self.path, "rev-parse", "HEAD").strip()

    # -- changes --------------------------------------------------------------------
    def commit(self, message: str) -> None:
        git(self.path, "add", "-A")
        git(self.path, "commit", "--quiet", "--allow-empty", "-m", message)

    def apply(self, scenario: scenarios.Scenario) -> str:
        """Make and commit the scenario's change; return a one-line description of it."""
        change = scenario.change
        if change in ("none", "same-commit"):
            return "no change" if change == "none" else f"no change: rebuild {self.commit_id[:12]}"
        if change == "code":
            self.releases += 1
            path = self.path / "production_control" / "web.py"
            with path.open("a") as f:
                f.write(f"\n# benchmark {self.run_id}: release {self.releases}\n")
            self.commit(f"benchmark: code-only release {self.releases}")
            return "appended a line to production_control/web.py"
        if change == "dep-patch":
            package = scenario.package
            before = (self.path / "requirements.lock").read_text()
            old = scenarios.locked_version(before, package)
            new = scenarios.previous_patch(old, package)
            self.relock(upgrade=f"{package}=={new}")
            moved = scenarios.moved_pins(before, (self.path / "requirements.lock").read_text())
            self.commit(f"benchmark: {package} {old} -> {new}")
            return f"{', '.join(moved)} in requirements.lock (and requirements-dev.txt)"
        if change == "new-dep":
            pyproject = self.path / "pyproject.toml"
            pyproject.write_text(scenarios.add_dependency(pyproject.read_text(), scenarios.NEW_PACKAGE))
            self.relock()
            version = scenarios.locked_version((self.path / "requirements.lock").read_text(), scenarios.NEW_PACKAGE)
            self.commit(f"benchmark: add {scenarios.NEW_PACKAGE}")
            return f"added {scenarios.NEW_PACKAGE}=={version} to pyproject.toml and both locks"
        if change == "base":
            self.commit("benchmark: new base image")
            return f"base image + Debian package {scenarios.BASE_EXTRA_PACKAGE}, one layer"
        raise ValueError(f"unknown change {change!r}")

    def relock(self, upgrade: str | None = None) -> None:
        """Regenerate both locks with uv, keeping every other pin (uv reads the existing output file).

        requirements.lock feeds our deps image; requirements-dev.txt (runtime + dev
        tools, as the seed's) feeds the baseline. Each file keeps its header comment,
        plus a line naming this run: installs nothing, but keeps the builder from
        reusing an earlier benchmark run's cache for the same lock (a real project
        builds a new lock once), so build seconds do not depend on earlier runs.
        """
        for source, target in (("pyproject.toml", "requirements.lock"), ("requirements-dev.in", "requirements-dev.txt")):
            path = self.path / target
            header = "".join(line for line in _leading_comments(path.read_text()) if not line.startswith("# benchmark run "))
            header += f"# benchmark run {self.run_id}\n"
            argv = [str(self.uv), "pip", "compile", source, "--universal", "--generate-hashes", "--no-header",
                    "--quiet", "-o", target]
            if upgrade:
                argv += ["--upgrade-package", upgrade]
            env = dict(os.environ)
            if self.ca_bundle:
                env["SSL_CERT_FILE"] = self.ca_bundle  # PyPI through the TLS-inspecting proxy
            result = subprocess.run(argv, cwd=self.path, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                raise BenchmarkError(f"uv could not lock {source}: {result.stderr.strip().splitlines()[-1:]}")
            path.write_text(header + path.read_text())


def _leading_comments(text: str) -> list[str]:
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines

"""The release scenarios, in the order a chain runs them. Pure: no I/O.

Each scenario is one change to the repository (or none), then a build of both
designs, then a pull on servers that hold the previous scenario's release.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

# One package per dependency group of deps/layers.toml that the "dependency bump"
# scenarios move back by one patch release (each has a real x.y.Z patch history):
# which group a bumped package sits in decides what the classic store re-pulls.
# pydantic pins pydantic-core exactly, so its bump moves both (the whole group).
BUMPS = {"libraries": "markupsafe", "server": "click", "foundation": "pydantic"}
# The package the "new dependency" scenario adds: small, pure Python, nothing here depends on it.
NEW_PACKAGE = "itsdangerous"
# The Debian package the "base image change" scenario adds to the base image.
BASE_EXTRA_PACKAGE = "less"


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    change: str  # what is done to the clone first: see CHANGES
    clean_build: bool  # build without the builder's cache (a fresh CI runner)
    deps_changed: bool  # our deps image must be rebuilt (its inputs changed)
    package: str = ""  # the package a dependency bump moves back one patch release
    group: str = ""  # its dependency group (deps/layers.toml)


CHANGES = ("none", "code", "same-commit", "dep-patch", "new-dep", "base")

SCENARIOS = (
    Scenario("first", "first deploy (server has nothing)", "none", clean_build=True, deps_changed=True),
    Scenario("code", "code-only release (one .py file)", "code", clean_build=False, deps_changed=False),
    Scenario("rebuild", "same commit, clean builder", "same-commit", clean_build=True, deps_changed=True),
    *(Scenario(f"dep-{group}", f"{package} patch release (`{group}` group)", "dep-patch", clean_build=False,
               deps_changed=True, package=package, group=group) for group, package in BUMPS.items()),
    Scenario("new-dep", f"new dependency {NEW_PACKAGE}", "new-dep", clean_build=False, deps_changed=True),
    Scenario("base", "base image change", "base", clean_build=False, deps_changed=True),
)
QUICK = ("first", "code")


def select(keys: tuple[str, ...] | None = None) -> tuple[Scenario, ...]:
    """The scenarios named by `keys` (all when None), in chain order, always from "first":
    every other scenario measures a release onto a server that runs the one before."""
    if keys is None:
        return SCENARIOS
    known = {s.key for s in SCENARIOS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(unknown)}: use {', '.join(s.key for s in SCENARIOS)}")
    return tuple(s for s in SCENARIOS if s.key in keys or s.key == "first")


def ours_steps(scenario: Scenario) -> list[list[str]]:
    """The invoke tasks our design runs for a release (argv after `invoke`).

    `build-deps` is part of every release: it is a no-op when the registry has
    the deps tag. When the deps inputs changed it gets --force, so a tag left in
    the registry by an earlier benchmark run is still rebuilt and timed.
    """
    deps = ["build-deps", "--json"]
    app = ["build-app", "--json"]
    if scenario.deps_changed:
        deps.insert(1, "--force")
    if scenario.clean_build:
        deps.insert(1, "--no-cache")
        app.insert(1, "--no-cache")
    return [deps, app]


_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def previous_patch(version: str, package: str = "package") -> str:
    """'3.0.4' -> '3.0.3': the patch release just before `version`."""
    match = _VERSION.match(version)
    if not match or int(match.group(3)) == 0:
        raise ValueError(f"{package} {version} has no previous patch release: pick another package in scenarios.BUMPS")
    major, minor, patch = (int(g) for g in match.groups())
    return f"{major}.{minor}.{patch - 1}"


def locked_version(lock_text: str, package: str) -> str:
    """The version `package` is pinned to in a requirements lock."""
    match = re.search(rf"^{re.escape(package)}==([^\s;\\]+)", lock_text, re.MULTILINE | re.IGNORECASE)
    if not match:
        raise ValueError(f"{package} is not in the lock")
    return match.group(1)


def add_dependency(pyproject_text: str, package: str) -> str:
    """pyproject.toml with `package` appended to [project].dependencies (formatting kept)."""
    match = re.search(r"^dependencies = \[\n(?P<body>(?:[ \t]+.*\n)*?)\]", pyproject_text, re.MULTILINE)
    if not match:
        raise ValueError("pyproject.toml has no multi-line `dependencies = [` list")
    insert_at = match.end("body")
    return pyproject_text[:insert_at] + f'    "{package}",\n' + pyproject_text[insert_at:]


_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", re.MULTILINE)


def moved_pins(before: str, after: str) -> list[str]:
    """'pydantic 2.14.4 -> 2.14.3' for each pin of a lock that changed (added or removed pins too)."""
    old, new = dict(_PIN.findall(before)), dict(_PIN.findall(after))
    return [f"{name} {old.get(name, '(none)')} -> {new.get(name, '(none)')}"
            for name in sorted(old.keys() | new.keys()) if old.get(name) != new.get(name)]


def reorder_layers(layers_toml: str, order: tuple[str, ...]) -> str:
    """deps/layers.toml with its groups stacked in `order` (bottom to top); same groups, same packages."""
    groups = {g["name"]: g["packages"] for g in tomllib.loads(layers_toml)["layer"]}
    if sorted(order) != sorted(groups):
        raise ValueError(f"--layer-order must name each group of deps/layers.toml once: {', '.join(groups)}")
    blocks = [f'[[layer]]\nname = "{name}"\npackages = [{", ".join(f"{chr(34)}{p}{chr(34)}" for p in groups[name])}]\n'
              for name in order]
    return f"# Reordered by the benchmark (--layer-order {','.join(order)}), bottom to top.\n\n" + "\n".join(blocks)

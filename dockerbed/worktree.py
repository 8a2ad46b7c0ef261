"""Clones of a work tree, where tests and benchmarks make and commit their own changes.

A clone holds the source's work tree as it is (tracked, and untracked but not ignored files:
what a build would see, as delivery.images.build.source_files lists them), committed as one commit.
The source repository is never written.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from dockerbed import BedError


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise BedError(f"`git {' '.join(args)}` failed in {root}: {result.stderr.strip()}")
    return result.stdout


def files(source: Path) -> list[str]:
    """The work tree's files, relative: tracked and untracked, not ignored, not deleted."""
    listing = git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return sorted(name for name in listing.split("\0") if name and (source / name).is_file())


def copy(source: Path, destination: Path) -> Path:
    """Copy the work tree's files of `source` into `destination`."""
    for name in files(source):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)
    return destination


def clone(source: Path, destination: Path, message: str, user: str = "test bed") -> Path:
    """A git clone of `source` holding its work tree, committed with `message` by `user`."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    git(destination.parent, "clone", "--quiet", "--no-hardlinks", str(source), str(destination))
    git(destination, "config", "user.name", user)
    git(destination, "config", "user.email", f"{user.replace(' ', '-')}@localhost")
    git(destination, "config", "commit.gpgsign", "false")
    wanted = set(files(source))
    for name in git(destination, "ls-files", "-z").split("\0"):
        if name and name not in wanted:
            (destination / name).unlink(missing_ok=True)  # deleted in the source's work tree
    copy(source, destination)
    git(destination, "add", "-A")
    git(destination, "commit", "--quiet", "--allow-empty", "-m", message)
    return destination

"""Facts about the source tree from git: the commit, whether the tree is dirty, the commit time."""

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from delivery.errors import DeliveryError


@dataclass(frozen=True)
class SourceState:
    """The commit being built, a fingerprint of uncommitted changes (None if clean), and its commit time."""

    commit: str
    dirty_fingerprint: str | None
    commit_time: int  # seconds since the epoch; used as SOURCE_DATE_EPOCH


def read_source_state(root: Path) -> SourceState:
    """Read the HEAD commit, the dirty fingerprint and the commit time of the repository at `root`."""
    if not Path(root).is_dir():
        raise DeliveryError(f"{root} is not a directory: run the task from the project root")
    top = Path(_git(root, "rev-parse", "--show-toplevel").decode().strip())
    if _git_status(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}") != 0:
        raise DeliveryError(f"commit first: the git repository {top} has no commits yet")
    commit = _git(top, "rev-parse", "--verify", "HEAD^{commit}").decode().strip()
    commit_time = int(_git(top, "log", "-1", "--format=%ct", commit).decode().strip())
    return SourceState(commit=commit, dirty_fingerprint=_dirty_fingerprint(top), commit_time=commit_time)


def _dirty_fingerprint(top: Path) -> str | None:
    """sha256 over the diff against HEAD and the untracked files' names and contents; None if clean."""
    diff = _git(
        top, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--no-textconv",
        "--src-prefix=a/", "--dst-prefix=b/", "--",
    )  # fmt: skip
    untracked = sorted(name for name in _git(top, "ls-files", "-z", "--others", "--exclude-standard").split(b"\0") if name)
    if not diff and not untracked:
        return None
    digest = hashlib.sha256(_field(diff))
    for name in untracked:
        digest.update(_field(name))
        digest.update(_field(_content_digest(top / os.fsdecode(name))))
    return digest.hexdigest()


def _field(data: bytes) -> bytes:
    """`data` prefixed with its length, so consecutive fields cannot run together."""
    return len(data).to_bytes(8, "big") + data


def _content_digest(path: Path) -> bytes:
    """sha256 of a file's bytes (of the link target for a symlink; empty for anything else)."""
    if path.is_symlink():
        return hashlib.sha256(b"link:" + os.fsencode(os.readlink(path))).digest()
    digest = hashlib.sha256(b"file:")
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except (IsADirectoryError, FileNotFoundError):
        pass  # a nested repository (listed as "dir/") or a file deleted meanwhile: the name counts
    except PermissionError:
        raise DeliveryError(f"cannot read untracked file {path}: fix its permissions or add it to .gitignore") from None
    return digest.digest()


def run_git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """`git -C root ARGS`, its output captured and its exit status left to the caller; git missing: one line."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, env=env, check=False)
    except FileNotFoundError:
        raise DeliveryError("git is not installed: install git and run the task again") from None


def _git_status(root: Path, *args: str) -> int:
    return run_git(root, *args).returncode


def _git(root: Path, *args: str) -> bytes:
    """Run git in `root` and return its stdout; a failure becomes a one-line DeliveryError."""
    result = run_git(root, *args)
    if result.returncode == 0:
        return result.stdout
    stderr = result.stderr.decode(errors="replace")
    if "dubious ownership" in stderr:
        raise DeliveryError(f"git refuses {root} (dubious ownership): run `git config --global --add safe.directory {root}`")
    if "not a git repository" in stderr:
        raise DeliveryError(f"{root} is not a git repository: run `git init` there and commit first")
    first_line = next((line.strip() for line in stderr.splitlines() if line.strip()), f"exit status {result.returncode}")
    raise DeliveryError(f"`git {' '.join(args)}` failed in {root} ({first_line}): fix the repository and retry")

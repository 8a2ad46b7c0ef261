"""Git facts from a real temporary repository: commit, dirty fingerprint, commit time."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from delivery.errors import DeliveryError
from delivery.images.source import SourceState, read_source_state

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

COMMIT_TIME = 1_700_000_000


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_AUTHOR_DATE": f"@{COMMIT_TIME} +0000",
        "GIT_COMMITTER_DATE": f"@{COMMIT_TIME} +0000",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repo.parent),
    }
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True)
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "app.py").write_text("print('hello')\n")
    (root / ".gitignore").write_text("*.log\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_clean_tree(repo: Path) -> None:
    assert read_source_state(repo) == SourceState(
        commit=git(repo, "rev-parse", "HEAD"), dirty_fingerprint=None, commit_time=COMMIT_TIME
    )


def test_ignored_files_keep_the_tree_clean(repo: Path) -> None:
    (repo / "debug.log").write_text("noise\n")

    assert read_source_state(repo).dirty_fingerprint is None


def test_commit_time_matches_git_log(repo: Path) -> None:
    assert read_source_state(repo).commit_time == int(git(repo, "log", "-1", "--format=%ct"))


def test_a_subdirectory_reads_the_whole_repository(repo: Path) -> None:
    (repo / "sub").mkdir()
    (repo / "app.py").write_text("print('changed')\n")

    assert read_source_state(repo / "sub") == read_source_state(repo)


def test_modified_file_gives_a_fingerprint(repo: Path) -> None:
    (repo / "app.py").write_text("print('changed')\n")

    state = read_source_state(repo)

    assert state.dirty_fingerprint is not None
    assert len(state.dirty_fingerprint) == 64
    int(state.dirty_fingerprint, 16)
    assert state.commit == git(repo, "rev-parse", "HEAD")


def test_fingerprint_follows_the_content_of_changes(repo: Path) -> None:
    (repo / "app.py").write_text("print('one')\n")
    one = read_source_state(repo).dirty_fingerprint
    (repo / "app.py").write_text("print('two')\n")
    two = read_source_state(repo).dirty_fingerprint
    (repo / "app.py").write_text("print('one')\n")

    assert one != two
    assert read_source_state(repo).dirty_fingerprint == one  # stable for the same changes


def test_staged_changes_count(repo: Path) -> None:
    (repo / "app.py").write_text("print('staged')\n")
    git(repo, "add", "app.py")

    assert read_source_state(repo).dirty_fingerprint is not None


def test_untracked_files_change_the_fingerprint(repo: Path) -> None:
    (repo / "app.py").write_text("print('changed')\n")
    modified_only = read_source_state(repo).dirty_fingerprint
    (repo / "new.py").write_text("x = 1\n")
    with_untracked = read_source_state(repo).dirty_fingerprint
    (repo / "new.py").write_text("x = 2\n")
    with_other_content = read_source_state(repo).dirty_fingerprint

    assert len({modified_only, with_untracked, with_other_content}) == 3


def test_an_untracked_file_alone_makes_the_tree_dirty(repo: Path) -> None:
    (repo / "new.py").write_text("x = 1\n")
    first = read_source_state(repo).dirty_fingerprint
    (repo / "new.py").rename(repo / "other.py")

    assert first is not None
    assert read_source_state(repo).dirty_fingerprint not in (None, first)  # the name counts too


def test_untracked_symlink_counts_its_target(repo: Path) -> None:
    (repo / "link").symlink_to("app.py")
    first = read_source_state(repo).dirty_fingerprint
    (repo / "link").unlink()
    (repo / "link").symlink_to("elsewhere")

    assert first is not None
    assert read_source_state(repo).dirty_fingerprint not in (None, first)


def test_a_new_commit_is_clean_again(repo: Path) -> None:
    (repo / "app.py").write_text("print('changed')\n")
    git(repo, "commit", "-q", "-am", "second")

    state = read_source_state(repo)

    assert state.dirty_fingerprint is None
    assert state.commit == git(repo, "rev-parse", "HEAD")


def test_not_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError) as caught:
        read_source_state(tmp_path)

    assert str(caught.value) == f"{tmp_path} is not a git repository: run `git init` there and commit first"


def test_no_commits_yet(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")

    with pytest.raises(DeliveryError, match=r"^commit first: the git repository .* has no commits yet$"):
        read_source_state(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="is not a directory: run the task from the project root"):
        read_source_state(tmp_path / "nope")


def test_git_not_installed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo))  # a directory without a git binary

    with pytest.raises(DeliveryError) as caught:
        read_source_state(repo)

    assert str(caught.value) == "git is not installed: install git and run the task again"

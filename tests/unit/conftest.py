"""Shared fixtures for the unit tests."""

import tomllib
from pathlib import Path

import pytest

from production_control.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pyproject_version() -> str:
    """The version declared in the repository's pyproject.toml."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]["version"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a fresh data directory that does not exist yet."""
    return Settings(
        data_dir=tmp_path / "data",
        deps_tag="deps-1.0.0-0123abcd",
        git_commit="0123456789abcdef",
        site_name="plant-a",
    )

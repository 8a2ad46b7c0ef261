"""Production control: a web app and cron jobs shipped as one Docker image."""

import tomllib
from pathlib import Path

UNKNOWN_VERSION = "0+unknown"


def read_version(pyproject: Path) -> str:
    """Return `[project].version` from `pyproject`, or UNKNOWN_VERSION if the file is missing."""
    try:
        with pyproject.open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except FileNotFoundError:
        return UNKNOWN_VERSION


__version__ = read_version(Path(__file__).resolve().parent.parent / "pyproject.toml")

"""The project on disk: its versions (from pyproject.toml), its lock file and its Dockerfile."""

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery.config.versioning import parse_semver
from delivery.errors import DeliveryError

PYPROJECT = "pyproject.toml"
LOCK_FILE = "requirements.lock"
DOCKERFILE = "Dockerfile"


@dataclass(frozen=True)
class Project:
    """Where the project lives and the two versions it declares."""

    root: Path
    app_version: str
    deps_version: str
    lock_path: Path
    dockerfile_path: Path


def load_project(root: Path) -> Project:
    """Read and check pyproject.toml's versions, and check that the lock file and the Dockerfile exist."""
    root = Path(root).absolute()
    pyproject = root / PYPROJECT
    data = _read_toml(pyproject)
    app_version = _version(data, ("project",), pyproject)
    deps_version = _version(data, ("tool", "production-control", "deps"), pyproject)
    lock_path = root / LOCK_FILE
    if not lock_path.is_file():
        raise DeliveryError(f"{LOCK_FILE} is missing in {root}: run `invoke lock`")
    dockerfile_path = root / DOCKERFILE
    if not dockerfile_path.is_file():
        raise DeliveryError(f"{DOCKERFILE} is missing in {root}: restore it with `git checkout -- {DOCKERFILE}`")
    return Project(
        root=root,
        app_version=app_version,
        deps_version=deps_version,
        lock_path=lock_path,
        dockerfile_path=dockerfile_path,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise DeliveryError(f"{PYPROJECT} is missing in {path.parent}: run invoke from the project root") from None
    except UnicodeDecodeError:
        raise DeliveryError(f"{path} is not UTF-8: re-save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # The message carries the position, e.g. "Expected '=' ... (at line 3, column 5)".
        detail = " ".join(str(error).split())
        raise DeliveryError(f"{path} is not valid TOML: {detail}: fix the syntax there") from None


def _version(data: dict[str, Any], keys: tuple[str, ...], path: Path) -> str:
    table_name = ".".join(keys)
    table: Any = data
    for key in keys:
        table = table.get(key) if isinstance(table, dict) else None
    value = table.get("version") if isinstance(table, dict) else None
    if value is None:
        raise DeliveryError(f'{path} has no [{table_name}].version: add version = "1.0.0" under [{table_name}]')
    try:
        parse_semver(value)
    except DeliveryError:
        raise DeliveryError(
            f'{path}: [{table_name}].version {value!r} is not MAJOR.MINOR.PATCH: set it to e.g. "1.0.0"'
        ) from None
    return str(value)

"""Semantic versions of the app and the deps image, and bumping them in pyproject.toml."""

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import String

from delivery.errors import DeliveryError

BUMP_PARTS = ("major", "minor", "patch")

_SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)", re.ASCII)

# Where each version lives in pyproject.toml, as a path of table keys.
_APP_TABLE = ("project",)
_DEPS_TABLE = ("tool", "production-control", "deps")


def parse_semver(s: str) -> tuple[int, int, int]:
    """Split a strict MAJOR.MINOR.PATCH version (no leading zeros, no suffix) into ints."""
    match = _SEMVER.fullmatch(s) if isinstance(s, str) else None
    if match is None:
        raise DeliveryError(f"invalid version {s!r}: use MAJOR.MINOR.PATCH, e.g. 1.0.0")
    major, minor, patch = (int(group) for group in match.groups())
    return major, minor, patch


def _check_part(part: str) -> None:
    if part not in BUMP_PARTS:
        raise DeliveryError(f"invalid bump part {part!r}: use major, minor or patch")


def bump(version: str, part: str) -> str:
    """Return `version` with `part` (major, minor or patch) incremented and lower parts reset."""
    _check_part(part)
    major, minor, patch = parse_semver(version)
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def bump_pyproject(path: Path, part: str, deps: bool = False) -> tuple[str, str]:
    """Bump the app version (or the deps version) in pyproject.toml in place; return (old, new).

    Only the version value changes: comments, quoting and layout are kept byte for byte.
    The file is replaced atomically, so a crash never leaves half a pyproject.toml.
    """
    _check_part(part)
    keys = _DEPS_TABLE if deps else _APP_TABLE
    where = f"[{'.'.join(keys)}].version"
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DeliveryError(f"{path} is missing: run invoke from the project root") from None
    except UnicodeDecodeError:
        raise DeliveryError(f"{path} is not UTF-8: re-save it as UTF-8") from None
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as error:
        raise DeliveryError(f"{path} is not valid TOML ({_one_line(error)}): fix the syntax") from None

    table = _lookup_table(document, keys)
    item = table.get("version") if table is not None else None
    if item is None:
        raise DeliveryError(f"{path} has no {where}: add version = \"1.0.0\" under [{'.'.join(keys)}]")
    if not isinstance(item, String):
        raise DeliveryError(f"{path}: {where} must be a string: write version = \"1.0.0\"")
    old = str(item)
    try:
        new = bump(old, part)
    except DeliveryError:
        raise DeliveryError(f"{path}: {where} {old!r} is not MAJOR.MINOR.PATCH: set it to e.g. \"1.0.0\"") from None

    # Keep the quoting style ("..." or '...'); tomlkit carries over the comment and spacing.
    table["version"] = String.from_raw(new, type_=item.type)
    _write_atomically(path, tomlkit.dumps(document).encode("utf-8"))
    return old, new


def _lookup_table(document: tomlkit.TOMLDocument, keys: tuple[str, ...]) -> Any:
    """The (possibly nested) table at `keys`, or None when a level is missing or not a table."""
    table: Any = document
    for key in keys:
        table = table.get(key)
        if not isinstance(table, Mapping):
            return None
    return table


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, then rename it over `path`, keeping its mode."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())

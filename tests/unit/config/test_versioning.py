"""Semantic versions: parsing, bumping, and bumping pyproject.toml without touching anything else."""

import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delivery.config.versioning import bump, bump_pyproject, parse_semver
from delivery.errors import DeliveryError

REPO_ROOT = Path(__file__).resolve().parents[3]

PYPROJECT = """\
# A header comment that must survive.

[project]
name = "demo"   # trailing comment
version = "1.2.3"  # the app version
dependencies = [
    "fastapi",   # weird   spacing
]

[tool.production-control.deps]
# Semantic version of the dependency image.
version = '0.9.9'    # literal string, odd spacing

[tool.other]
version = "7.7.7"
"""

versions = st.tuples(*[st.integers(min_value=0, max_value=10**9)] * 3)


def as_text(v: tuple[int, int, int]) -> str:
    return ".".join(map(str, v))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0.0.0", (0, 0, 0), id="zeros"),
        pytest.param("1.0.0", (1, 0, 0), id="one"),
        pytest.param("10.20.30", (10, 20, 30), id="multi-digit"),
        pytest.param("1.0.1234567890", (1, 0, 1234567890), id="big-patch"),
    ],
)
def test_parse_semver_accepts_strict_versions(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_semver(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("1.0", id="two-parts"),
        pytest.param("1.0.0.0", id="four-parts"),
        pytest.param("01.0.0", id="leading-zero-major"),
        pytest.param("1.00.0", id="leading-zero-minor"),
        pytest.param("1.0.07", id="leading-zero-patch"),
        pytest.param("v1.0.0", id="v-prefix"),
        pytest.param("1.0.0-rc1", id="prerelease"),
        pytest.param("1.0.0+build", id="build-metadata"),
        pytest.param(" 1.0.0", id="leading-space"),
        pytest.param("1.0.0\n", id="trailing-newline"),
        pytest.param("1.-1.0", id="negative"),
        pytest.param("1.٣.0", id="non-ascii-digit"),
        pytest.param("a.b.c", id="letters"),
    ],
)
def test_parse_semver_rejects_anything_else(text: str) -> None:
    with pytest.raises(DeliveryError, match=r"invalid version .*: use MAJOR\.MINOR\.PATCH"):
        parse_semver(text)


@pytest.mark.parametrize(
    ("version", "part", "expected"),
    [
        pytest.param("1.2.3", "patch", "1.2.4", id="patch"),
        pytest.param("1.2.3", "minor", "1.3.0", id="minor-resets-patch"),
        pytest.param("1.2.3", "major", "2.0.0", id="major-resets-minor-and-patch"),
        pytest.param("0.0.9", "patch", "0.0.10", id="patch-carries-no-digit"),
        pytest.param("0.9.0", "minor", "0.10.0", id="minor-to-two-digits"),
    ],
)
def test_bump(version: str, part: str, expected: str) -> None:
    assert bump(version, part) == expected


@pytest.mark.parametrize("part", ["", "Patch", "micro", "build"], ids=["empty", "capitalised", "micro", "build"])
def test_bump_rejects_unknown_parts(part: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        bump("1.0.0", part)
    assert str(caught.value) == f"invalid bump part {part!r}: use major, minor or patch"


def test_bump_rejects_an_invalid_version() -> None:
    with pytest.raises(DeliveryError, match="invalid version"):
        bump("1.0", "patch")


@given(versions, st.sampled_from(["major", "minor", "patch"]))
def test_bump_is_strictly_greater_and_parses_back(v: tuple[int, int, int], part: str) -> None:
    bumped = bump(as_text(v), part)
    assert parse_semver(bumped) > v
    assert as_text(parse_semver(bumped)) == bumped


@given(versions)
def test_parse_semver_round_trips(v: tuple[int, int, int]) -> None:
    assert parse_semver(as_text(v)) == v


@given(versions, versions)
def test_bump_keeps_the_order_of_versions(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    for part in ("major", "minor", "patch"):
        if a <= b:
            assert parse_semver(bump(as_text(a), part)) <= parse_semver(bump(as_text(b), part))


@given(st.text())
def test_parse_semver_raises_only_delivery_error(text: str) -> None:
    try:
        parsed = parse_semver(text)
    except DeliveryError as error:
        assert "\n" not in str(error)
    else:
        assert as_text(parsed) == text


# --- bump_pyproject ---------------------------------------------------------------------------


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


@pytest.mark.parametrize(
    ("part", "deps", "expected", "changed"),
    [
        pytest.param(
            "patch", False, ("1.2.3", "1.2.4"),
            ('version = "1.2.3"  # the app version\n', 'version = "1.2.4"  # the app version\n'),
            id="app-patch",
        ),
        pytest.param(
            "major", False, ("1.2.3", "2.0.0"),
            ('version = "1.2.3"  # the app version\n', 'version = "2.0.0"  # the app version\n'),
            id="app-major",
        ),
        pytest.param(
            "minor", True, ("0.9.9", "0.10.0"),
            ("version = '0.9.9'    # literal string, odd spacing\n", "version = '0.10.0'    # literal string, odd spacing\n"),
            id="deps-minor-keeps-literal-quotes",
        ),
    ],
)  # fmt: skip
def test_bump_pyproject_changes_only_the_version_line(
    tmp_path: Path, part: str, deps: bool, expected: tuple[str, str], changed: tuple[str, str]
) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)

    assert bump_pyproject(path, part, deps=deps) == expected

    after = path.read_text()
    assert changed_lines(PYPROJECT, after) == [changed]
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_bump_pyproject_keeps_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    before = PYPROJECT.replace("\n", "\r\n").encode()
    path.write_bytes(before)

    bump_pyproject(path, "patch")

    assert path.read_bytes() == before.replace(b'version = "1.2.3"', b'version = "1.2.4"')


def test_bump_pyproject_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    path.chmod(0o640)

    bump_pyproject(path, "patch")

    assert path.stat().st_mode & 0o777 == 0o640


def test_bump_pyproject_on_the_real_file_changes_one_line(tmp_path: Path) -> None:
    before = (REPO_ROOT / "pyproject.toml").read_text()
    path = tmp_path / "pyproject.toml"
    path.write_text(before)
    version = tomllib.loads(before)["tool"]["production-control"]["deps"]["version"]

    old, new = bump_pyproject(path, "patch", deps=True)

    assert (old, new) == (version, bump(version, "patch"))
    assert changed_lines(before, path.read_text()) == [(f'version = "{old}"\n', f'version = "{new}"\n')]
    assert tomllib.loads(path.read_text())["tool"]["production-control"]["deps"]["version"] == new


def test_bump_pyproject_checks_the_part_before_touching_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.toml"

    with pytest.raises(DeliveryError, match="invalid bump part 'tiny'"):
        bump_pyproject(missing, "tiny")


@pytest.mark.parametrize(
    ("content", "deps", "message"),
    [
        pytest.param('[project]\nname = "x"\n', False, r"has no \[project\]\.version: add version", id="no-app-version"),
        pytest.param('[project]\nversion = "1.0.0"\n', True, r"has no \[tool\.production-control\.deps\]\.version", id="no-deps-table"),
        pytest.param('project = 3\n', False, r"has no \[project\]\.version", id="project-not-a-table"),
        pytest.param('[project]\nversion = 1\n', False, r"\[project\]\.version must be a string", id="version-not-a-string"),
        pytest.param('[project]\nversion = "1.0"\n', False, r"\[project\]\.version '1\.0' is not MAJOR\.MINOR\.PATCH", id="bad-version"),
        pytest.param('[project\nversion = "1.0.0"\n', False, r"is not valid TOML \(.*line 1.*\): fix the syntax", id="malformed"),
    ],
)  # fmt: skip
def test_bump_pyproject_errors_leave_the_file_alone(tmp_path: Path, content: str, deps: bool, message: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(content)

    with pytest.raises(DeliveryError, match=message) as caught:
        bump_pyproject(path, "patch", deps=deps)

    assert "\n" not in str(caught.value)
    assert path.read_text() == content


def test_bump_pyproject_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="pyproject.toml is missing: run invoke from the project root"):
        bump_pyproject(tmp_path / "pyproject.toml", "patch")


@given(versions, st.sampled_from(["major", "minor", "patch"]), st.booleans())
def test_bump_pyproject_round_trip_matches_bump(v: tuple[int, int, int], part: str, deps: bool) -> None:
    # tmp_path is shared across @given examples, so each example gets its own directory.
    text = PYPROJECT.replace("'0.9.9'", f"'{as_text(v)}'").replace('"1.2.3"', f'"{as_text(v)}"')
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pyproject.toml"
        path.write_text(text)
        old, new = bump_pyproject(path, part, deps=deps)
        after = path.read_text()
    assert (old, new) == (as_text(v), bump(as_text(v), part))
    assert len(changed_lines(text, after)) == 1
    data = tomllib.loads(after)
    assert (data["tool"]["production-control"]["deps"]["version"] if deps else data["project"]["version"]) == new

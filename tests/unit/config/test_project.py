"""Loading the project: versions from pyproject.toml and the files a build needs."""

import tomllib
from pathlib import Path

import pytest

from delivery.config.project import Project, load_project
from delivery.errors import DeliveryError

REPO_ROOT = Path(__file__).resolve().parents[3]

PYPROJECT = """\
[project]
name = "demo"
version = "1.2.3"

[tool.production-control.deps]
version = "0.4.0"
"""


def make_project(root: Path, pyproject: str | None = PYPROJECT, lock: bool = True, dockerfile: bool = True) -> Path:
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    if lock:
        (root / "requirements.lock").write_text("fastapi==1 --hash=sha256:00\n")
    if dockerfile:
        (root / "Dockerfile").write_text("FROM a AS deps\nFROM deps AS runtime\n")
    return root


def test_load_project(tmp_path: Path) -> None:
    assert load_project(make_project(tmp_path)) == Project(
        root=tmp_path,
        app_version="1.2.3",
        deps_version="0.4.0",
        lock_path=tmp_path / "requirements.lock",
        dockerfile_path=tmp_path / "Dockerfile",
    )


def test_load_the_real_project() -> None:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        data = tomllib.load(f)

    project = load_project(REPO_ROOT)

    assert project.app_version == data["project"]["version"]
    assert project.deps_version == data["tool"]["production-control"]["deps"]["version"]
    assert project.lock_path == REPO_ROOT / "requirements.lock"


def test_a_relative_root_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_project(tmp_path)
    monkeypatch.chdir(tmp_path)

    assert load_project(Path(".")).root == tmp_path


@pytest.mark.parametrize(
    ("pyproject", "message"),
    [
        pytest.param(None, "pyproject.toml is missing in {root}: run invoke from the project root", id="pyproject-missing"),
        pytest.param('[project]\nversion = "1.0.0\n', "{root}/pyproject.toml is not valid TOML: Illegal character '\\n' (at line 2, column 17): fix "
                                                      "the syntax there", id="malformed"),
        pytest.param('[tool.production-control.deps]\nversion = "1.0.0"\n', '{root}/pyproject.toml has no [project].version: add version = "1.0.0" '
                                                                            'under [project]', id="no-app-version"),
        pytest.param('[project]\nversion = "1.0.0"\n', '{root}/pyproject.toml has no [tool.production-control.deps].version: add version = "1.0.0" '
                                                       'under [tool.production-control.deps]', id="no-deps-version"),
        pytest.param('[project]\nversion = "1.0.0"\n[tool]\nproduction-control = 1\n',
                     "{root}/pyproject.toml has no [tool.production-control.deps].version", id="deps-table-not-a-table"),
        pytest.param(PYPROJECT.replace('"1.2.3"', '"1.2"'), "{root}/pyproject.toml: [project].version '1.2' is not MAJOR.MINOR.PATCH: set it to e.g. "
                                                            "\"1.0.0\"", id="invalid-app-version"),
        pytest.param(PYPROJECT.replace('"0.4.0"', '"v0.4.0"'), "{root}/pyproject.toml: [tool.production-control.deps].version 'v0.4.0' is not "
                                                               "MAJOR.MINOR.PATCH", id="invalid-deps-version"),
        pytest.param(PYPROJECT.replace('"1.2.3"', "1"), "{root}/pyproject.toml: [project].version 1 is not "
                                                        "MAJOR.MINOR.PATCH", id="version-not-a-string"),
    ],
)  # fmt: skip
def test_pyproject_errors(tmp_path: Path, pyproject: str | None, message: str) -> None:
    make_project(tmp_path, pyproject=pyproject)

    with pytest.raises(DeliveryError) as caught:
        load_project(tmp_path)

    assert str(caught.value).startswith(message.format(root=tmp_path))
    assert "\n" not in str(caught.value)


def test_pyproject_not_utf8(tmp_path: Path) -> None:
    make_project(tmp_path, pyproject=None)
    (tmp_path / "pyproject.toml").write_bytes(b"[project]\nname = '\xff'\n")

    with pytest.raises(DeliveryError, match="pyproject.toml is not UTF-8: re-save it as UTF-8"):
        load_project(tmp_path)


def test_lock_missing(tmp_path: Path) -> None:
    make_project(tmp_path, lock=False)

    with pytest.raises(DeliveryError) as caught:
        load_project(tmp_path)

    assert str(caught.value) == f"requirements.lock is missing in {tmp_path}: run `invoke lock`"


def test_dockerfile_missing(tmp_path: Path) -> None:
    make_project(tmp_path, dockerfile=False)

    with pytest.raises(DeliveryError) as caught:
        load_project(tmp_path)

    assert str(caught.value) == f"Dockerfile is missing in {tmp_path}: restore it with `git checkout -- Dockerfile`"

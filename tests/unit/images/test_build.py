"""Build plans (pure): targets, image refs, build args (SOURCE_DATE_EPOCH=0 for both images), secrets; the deps tag's inputs; the staged context."""

import stat
import subprocess
from pathlib import Path

import pytest

from delivery.config.project import Project, load_project
from delivery.config.settings import DeployConfig
from delivery.images import tags
from delivery.images.base import BaseImage
from delivery.images.build import (
    BuildPlan,
    app_plan,
    build_secrets,
    deps_inputs,
    deps_plan,
    deps_tag_for,
    stage_context,
)
from delivery.images.source import SourceState

REGISTRY = "registry.example.com:5000"
BASE_IMAGE = "python:3.12.12-slim-bookworm"
BASE = BaseImage(BASE_IMAGE, "sha256:" + "a" * 64)
REPUBLISHED = BaseImage(BASE_IMAGE, "sha256:" + "b" * 64)
COMMIT = "0123456789abcdef0123456789abcdef01234567"
COMMIT_TIME = 1795802318

PYPROJECT = """\
[project]
name = "production-control"
version = "1.2.3"

[tool.production-control.deps]
version = "1.0.0"
"""
LOCK = "fastapi==0.165.0 \\\n    --hash=sha256:896f\n"
LAYERS = '[[layer]]\nname = "server"\npackages = ["fastapi"]\n'
INSTALL = "#!/bin/sh\nset -eu\necho install \"$1\"\n"
SELECT = "print('select')\n"
DEPS_STAGES = f"""\
ARG PYTHON_IMAGE={BASE_IMAGE}
ARG DEPS_IMAGE=deps

FROM ${{PYTHON_IMAGE}} AS deps
COPY requirements.lock deps/ /deps/
RUN /deps/install-layer.sh rest
"""
RUNTIME_STAGE = """\
FROM ${DEPS_IMAGE} AS runtime
COPY production_control /app/production_control
CMD ["all"]
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small project: pyproject, lock, deps/ and a Dockerfile with deps and runtime stages."""
    project = tmp_path / "project"
    (project / "deps").mkdir(parents=True)
    (project / "production_control").mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "requirements.lock").write_text(LOCK)
    (project / "deps" / "layers.toml").write_text(LAYERS)
    (project / "deps" / "install-layer.sh").write_text(INSTALL)
    (project / "deps" / "select_layer.py").write_text(SELECT)
    (project / "production_control" / "__init__.py").write_text("")
    (project / "Dockerfile").write_text(DEPS_STAGES + "\n" + RUNTIME_STAGE)
    return project


@pytest.fixture
def project(root: Path) -> Project:
    return Project(
        root=root,
        app_version="1.2.3",
        deps_version="1.0.0",
        lock_path=root / "requirements.lock",
        dockerfile_path=root / "Dockerfile",
    )


def expected_deps_tag(python_image: str = BASE.pinned, deps_version: str = "1.0.0",
                      platforms: tuple[str, ...] = DeployConfig().platforms) -> str:
    """The deps tag built independently: each input file as `name NUL size NUL bytes`, lock first, deps/ sorted."""
    files = [
        ("requirements.lock", LOCK),
        ("deps/install-layer.sh", INSTALL),
        ("deps/layers.toml", LAYERS),
        ("deps/select_layer.py", SELECT),
    ]
    inputs = b"".join(f"{name}\0{len(text.encode())}\0{text}".encode() for name, text in files)
    return tags.deps_tag(deps_version, tags.deps_content_hash(inputs, DEPS_STAGES + "\n" + RUNTIME_STAGE, python_image, platforms))


# -- deps plan ---------------------------------------------------------------------------------------
def test_deps_inputs_are_the_lock_then_deps_files_sorted_and_name_prefixed(project: Project) -> None:
    assert deps_inputs(project) == (
        f"requirements.lock\0{len(LOCK)}\0{LOCK}"
        f"deps/install-layer.sh\0{len(INSTALL)}\0{INSTALL}"
        f"deps/layers.toml\0{len(LAYERS)}\0{LAYERS}"
        f"deps/select_layer.py\0{len(SELECT)}\0{SELECT}"
    ).encode()


def test_deps_plan_builds_on_the_base_by_digest_and_labels_it(project: Project, root: Path) -> None:
    tag = expected_deps_tag()
    assert deps_plan(project, DeployConfig(registry=REGISTRY), BASE) == BuildPlan(
        target="deps",
        image=f"{REGISTRY}/production-control-deps:{tag}",
        context=root,
        dockerfile=root / "Dockerfile",
        build_args={"DEPS_TAG": tag, "SOURCE_DATE_EPOCH": "0", "PYTHON_IMAGE": f"{BASE_IMAGE}@sha256:{'a' * 64}"},
        secrets=(),
        labels={
            "org.opencontainers.image.version": tag,
            "production-control.base.name": BASE_IMAGE,
            "production-control.base.digest": BASE.digest,
        },
        platforms=("linux/amd64", "linux/arm64"),  # deploy.platforms' default: one index of both
    )


def test_deps_plan_of_a_refresh_has_its_version_and_the_same_content_hash(project: Project) -> None:
    plan = deps_plan(project, DeployConfig(registry=REGISTRY), BASE, "1.0.1")
    assert plan.image == f"{REGISTRY}/production-control-deps:{expected_deps_tag(deps_version='1.0.1')}"
    assert plan.build_args["DEPS_TAG"].rsplit("-", 1)[1] == expected_deps_tag().rsplit("-", 1)[1]


@pytest.mark.parametrize(
    ("ca_bundle", "index_file", "expected"),
    [
        pytest.param(None, None, (), id="none"),
        pytest.param(Path("/etc/ssl/proxy-ca.pem"), None, ("id=ca_bundle,src=/etc/ssl/proxy-ca.pem",), id="ca-bundle"),
        pytest.param(None, Path("/run/secrets/index-url"), ("id=pip_index_url,src=/run/secrets/index-url",), id="index-url"),
        pytest.param(
            Path("/etc/ssl/proxy-ca.pem"),
            Path("/run/secrets/index-url"),
            ("id=ca_bundle,src=/etc/ssl/proxy-ca.pem", "id=pip_index_url,src=/run/secrets/index-url"),
            id="both-ca-first",
        ),
    ],
)
def test_build_secrets_name_files_only(project: Project, ca_bundle: Path | None, index_file: Path | None, expected: tuple) -> None:
    config = DeployConfig(registry=REGISTRY, ca_bundle=ca_bundle, pip_index_url_file=index_file)
    assert build_secrets(config) == expected
    assert deps_plan(project, config, BASE).secrets == expected


# -- app plan ------------------------------------------------------------------------------------------
DEPS_IMAGE = f"{REGISTRY}/production-control-deps:deps-1.0.0-abcdef123456"


@pytest.mark.parametrize(
    ("dirty", "tag"),
    [
        pytest.param(None, "1.2.3-0123456789ab", id="clean"),
        pytest.param("fedcba9876543210", "1.2.3-0123456789ab-dirty-fedcba98", id="dirty"),
    ],
)
@pytest.mark.parametrize("python_image", [None, "debian-python:3.12"], ids=["default-base", "configured-base"])
def test_app_plan(project: Project, root: Path, dirty: str | None, tag: str, python_image: str | None) -> None:
    source = SourceState(commit=COMMIT, dirty_fingerprint=dirty, commit_time=COMMIT_TIME)
    config = DeployConfig(registry=REGISTRY, python_image=python_image, ca_bundle=Path("/etc/ssl/proxy-ca.pem"))
    assert app_plan(project, config, source, DEPS_IMAGE) == BuildPlan(
        target="runtime",
        image=f"{REGISTRY}/production-control:{tag}",
        context=root,
        dockerfile=root / "Dockerfile",
        build_args={"DEPS_IMAGE": DEPS_IMAGE, "GIT_COMMIT": COMMIT, "SOURCE_DATE_EPOCH": "0"},
        secrets=(),
        labels={
            "org.opencontainers.image.version": "1.2.3",
            "org.opencontainers.image.revision": COMMIT,
            "org.opencontainers.image.created": "2026-11-27T17:58:38Z",  # the commit time, not the build time
        },
        base_image=DEPS_IMAGE,  # pulled into the engine first on the engine path
        platforms=("linux/amd64", "linux/arm64"),
    )


def test_output_is_an_oci_layout_with_rewritten_timestamps(project: Project, tmp_path: Path) -> None:
    plan = deps_plan(project, DeployConfig(registry=REGISTRY), BASE)
    assert plan.output(tmp_path / "layout") == {
        "type": "oci",
        "dest": str(tmp_path / "layout"),
        "tar": "false",
        "name": plan.image,
        "rewrite-timestamp": "true",
    }


# -- what the deps tag depends on ----------------------------------------------------------------------
def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


CHANGES_THE_TAG = [
    pytest.param(lambda r: (r / "requirements.lock").write_text(LOCK + "h11==0.16.0 \\\n    --hash=sha256:4e35\n"), id="lock"),
    pytest.param(lambda r: _edit(r / "deps" / "layers.toml", '"server"', '"web"'), id="deps-layers-toml"),
    pytest.param(lambda r: _edit(r / "deps" / "install-layer.sh", "echo", "printf '%s\\n'"), id="deps-install-script"),
    pytest.param(lambda r: (r / "deps" / "constraints.txt").write_text("pip<25\n"), id="new-file-in-deps"),
    pytest.param(lambda r: _edit(r / "Dockerfile", "install-layer.sh rest", "install-layer.sh 1"), id="deps-stage-text"),
    pytest.param(lambda r: _edit(r / "Dockerfile", BASE_IMAGE, "python:3.13-slim"), id="dockerfile-base-image"),
    pytest.param(lambda r: _edit(r / "pyproject.toml", 'version = "1.0.0"', 'version = "1.0.1"'), id="deps-version"),
]
KEEPS_THE_TAG = [
    pytest.param(lambda r: _edit(r / "pyproject.toml", 'version = "1.2.3"', 'version = "2.0.0"'), id="app-version"),
    pytest.param(lambda r: _edit(r / "Dockerfile", 'CMD ["all"]', 'CMD ["web"]'), id="runtime-stage-text"),
    pytest.param(lambda r: (r / "production_control" / "jobs.py").write_text("x = 1\n"), id="app-code"),
    pytest.param(
        lambda r: ((r / "deps" / "__pycache__").mkdir(), (r / "deps" / "__pycache__" / "select_layer.cpython-312.pyc").write_bytes(b"\0")),
        id="deps-pycache",
    ),
]


@pytest.mark.parametrize("change", CHANGES_THE_TAG)
def test_deps_tag_changes_with_its_inputs(root: Path, change) -> None:
    config = DeployConfig(registry=REGISTRY)
    before = deps_tag_for(load_project(root), config, BASE)
    change(root)
    assert deps_tag_for(load_project(root), config, BASE) != before


@pytest.mark.parametrize("change", KEEPS_THE_TAG)
def test_deps_tag_ignores_what_is_not_in_the_deps_image(root: Path, change) -> None:
    config = DeployConfig(registry=REGISTRY)
    before = deps_tag_for(load_project(root), config, BASE)
    change(root)
    assert deps_tag_for(load_project(root), config, BASE) == before == expected_deps_tag()


def test_deps_tag_ignores_git_ignored_files_in_deps(root: Path) -> None:
    (root / ".gitignore").write_text("*.swp\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    config = DeployConfig(registry=REGISTRY)
    before = deps_tag_for(load_project(root), config, BASE)
    (root / "deps" / ".layers.toml.swp").write_bytes(b"editor swap file")
    assert deps_tag_for(load_project(root), config, BASE) == before


@pytest.mark.parametrize(
    ("platforms", "like_before"),
    [
        pytest.param(("linux/amd64",), True, id="amd64-alone-keeps-the-tags-of-before-platforms"),
        pytest.param(("linux/arm64",), False, id="arm64-alone"),
        pytest.param(("linux/amd64", "linux/arm64"), False, id="both"),
    ],
)
def test_deps_tag_covers_the_platforms(project: Project, platforms: tuple[str, ...], like_before: bool) -> None:
    """Adding a platform gives a new deps tag (a no-op build-deps would otherwise keep the amd64-only image)."""
    tag = deps_tag_for(project, DeployConfig(platforms=platforms), BASE)
    assert tag == expected_deps_tag(platforms=platforms)
    before = tags.deps_tag("1.0.0", tags.deps_content_hash(deps_inputs(project), DEPS_STAGES + "\n" + RUNTIME_STAGE, BASE.pinned))
    assert (tag == before) is like_before
    assert deps_plan(project, DeployConfig(platforms=platforms), BASE).platforms == platforms


def test_deps_tag_changes_when_the_base_tag_is_republished(project: Project) -> None:
    """Same base name, new digest (a republished python:3.12-slim): a new deps tag."""
    config = DeployConfig()
    assert deps_tag_for(project, config, REPUBLISHED) != deps_tag_for(project, config, BASE)
    assert deps_tag_for(project, config, BaseImage(BASE_IMAGE, BASE.digest)) == deps_tag_for(project, config, BASE)


# -- staged build context ----------------------------------------------------------------------------
def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    files = {
        ".gitignore": ("ignored.log\nbuild/\n", 0o644),
        "README.md": ("readme\n", 0o600),  # private mode in the checkout: staged as 0644
        "docker-entrypoint.sh": ("#!/bin/sh\nexec \"$@\"\n", 0o700),  # any exec bit: staged as 0755
        "production_control/__init__.py": ("", 0o664),
        "production_control/web/app.py": ("app = 1\n", 0o644),
        "deleted.txt": ("gone\n", 0o644),
    }
    for name, (text, mode) in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    (root / "link-to-readme").symlink_to("README.md")
    git(root, "add", "-A")
    (root / "deleted.txt").unlink()  # tracked, but deleted in the work tree
    (root / "untracked.py").write_text("new = 1\n")  # untracked, not ignored: part of the build
    (root / "ignored.log").write_text("secret\n")
    (root / "build").mkdir()
    (root / "build" / "out.bin").write_bytes(b"\0")
    return root


def test_stage_context_copies_tracked_and_untracked_files_only(repo: Path, tmp_path: Path) -> None:
    destination = stage_context(repo, tmp_path / "context")
    assert destination == tmp_path / "context"
    staged = sorted(str(p.relative_to(destination)) for p in destination.rglob("*") if not p.is_dir())
    assert staged == [
        ".gitignore",
        "README.md",
        "docker-entrypoint.sh",
        "production_control/__init__.py",
        "production_control/web/app.py",
        "untracked.py",
    ]
    assert (destination / "production_control/web/app.py").read_text() == "app = 1\n"
    assert (destination / "docker-entrypoint.sh").read_text() == '#!/bin/sh\nexec "$@"\n'


def test_stage_context_normalizes_modes_and_keeps_fresh_times(repo: Path, tmp_path: Path) -> None:
    destination = stage_context(repo, tmp_path / "context")
    modes = {
        str(p.relative_to(destination)): stat.S_IMODE(p.stat().st_mode) for p in [destination, *destination.rglob("*")]
    }
    assert modes == {
        ".": 0o755,
        ".gitignore": 0o644,
        "README.md": 0o644,
        "docker-entrypoint.sh": 0o755,
        "production_control": 0o755,
        "production_control/__init__.py": 0o644,
        "production_control/web": 0o755,
        "production_control/web/app.py": 0o644,
        "untracked.py": 0o644,
    }
    # File times stay fresh: BuildKit sends context files whose size or time changed, so a
    # same-size edit must show a new time (the exporter clamps layer times to the epoch).
    assert all(p.stat().st_mtime > 1_000_000_000 for p in destination.rglob("*") if p.is_file())

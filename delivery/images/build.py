"""Building the two images: what to build (pure plans), and building it into a result nothing has pushed yet.

`deps_plan` and `app_plan` are pure: they return what to build (target, tags,
build args, secrets) and are tested without Docker. `build` is the one place that
builds, through BuildKit; it returns a `Built` (where the image is, its tag, digest and
platforms), which delivery/images/publish.py pushes. What must see the image before it
ships (the deps image's SBOM and its Debian-package guard, delivery/supply/) runs between
the two, called by the runbooks (delivery/usecases/building.py).

Two paths (delivery/images/builder.py chooses): on a builder with BuildKit's `oci`
exporter the image is written as an OCI layout and pushed by `Registry.push_layout`;
on an engine with the classic image store it is built into the engine and pushed
by it (`docker push`).

Reproducibility (layout path): the build context is staged with normalized file
times and modes, every build passes SOURCE_DATE_EPOCH=0 and asks the exporter to
rewrite file timestamps to it, without provenance attestations, so the same inputs
give the same image digest on any such builder, warm or clean. The engine path
cannot rewrite file times: its image config is still dated SOURCE_DATE_EPOCH, but
every layer it builds carries the build's times (the directories COPY creates, the
files RUN writes), so a rebuild gives new layers with the same files.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.config.project import Project
from delivery.config.references import split_image_ref
from delivery.config.settings import DeployConfig
from delivery.docker.engine import docker_errors, last_line
from delivery.errors import DeliveryError
from delivery.images import tags
from delivery.images.base import BaseImage
from delivery.images.builder import ENGINE
from delivery.images.buildprogress import BuildProgress
from delivery.images.source import SourceState, run_git
from delivery.reporting import Reporter

# Every file time in every layer is this epoch, for both images (as ko and Jib do):
# a layer's bytes then depend on its files only, so the entrypoint or crontab
# layer of a code-only release is the very same blob as in the previous release.
# The commit time is recorded in the org.opencontainers.image.created label instead.
SOURCE_DATE_EPOCH = 0


@dataclass(frozen=True)
class BuildPlan:
    target: str
    image: str  # the reference pushed, registry/repository:tag
    context: Path
    dockerfile: Path
    build_args: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    base_image: str | None = None  # an image of the registry the build starts FROM (the app's deps image)
    platforms: tuple[str, ...] = ("linux/amd64",)  # several: one index of an image per platform (deploy.platforms)

    @property
    def multi_platform(self) -> bool:
        return len(self.platforms) > 1

    @property
    def tag(self) -> str:
        return split_image_ref(self.image).tag or "latest"

    @property
    def repository(self) -> str:
        """The repository without deploy.registry's namespace, which the Registry adds."""
        return split_image_ref(self.image).repository.rsplit("/", 1)[-1]

    def output(self, layout: Path) -> dict[str, str]:
        """An OCI layout with timestamps rewritten to SOURCE_DATE_EPOCH (reproducible layers).

        The engine's own image exporter cannot rewrite timestamps while it unpacks
        into its store, so the image is written as a layout and pushed by `Registry.push_layout`
        (skopeo copy --preserve-digests: the pushed manifest is the layout's, byte for byte).
        """
        return {"type": "oci", "dest": str(layout), "tar": "false", "name": self.image, "rewrite-timestamp": "true"}


def python_image(project: Project, config: DeployConfig) -> str:
    """The base image the deps image is built on: configured, else the Dockerfile's default."""
    text = project.dockerfile_path.read_text()
    return config.python_image or tags.dockerfile_arg_default(text, "PYTHON_IMAGE") or ""


def source_files(root: Path, *paths: str) -> list[Path]:
    """The files git would ship (tracked, and untracked but not ignored), optionally under `paths`.

    Outside a git work tree: every file under `paths` (or `root`), caches left out.
    """
    listing = run_git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths)
    if listing.returncode == 0:
        files = (root / name for name in listing.stdout.decode().split("\0") if name)
    else:
        files = (f for base in ([root / p for p in paths] or [root]) for f in base.rglob("*") if "__pycache__" not in f.parts)
    return sorted(p for p in files if p.is_file() and not p.is_symlink())


def deps_inputs(project: Project) -> bytes:
    """Every file the deps stages copy: the lock and deps/ (layer groups, install script), name-prefixed."""
    files = [project.lock_path, *source_files(project.root, "deps")]
    return b"".join(
        f"{p.relative_to(project.root)}\0{p.stat().st_size}\0".encode() + p.read_bytes() for p in files
    )


def deps_content_hash(project: Project, config: DeployConfig, base: BaseImage) -> str:
    """The hash of the deps inputs + deps stages + base image digest + platforms: what the deps tags of this checkout carry."""
    return tags.deps_content_hash(deps_inputs(project), project.dockerfile_path.read_text(), base.pinned, config.platforms)


def deps_tag_for(project: Project, config: DeployConfig, base: BaseImage, version: str | None = None) -> str:
    """deps-<semver>-<content hash>: the same inputs give the same tag.

    `version` (default: the project's deps version) is higher for a refresh (`build-deps --refresh`).
    """
    return tags.deps_tag(version or project.deps_version, deps_content_hash(project, config, base))


def deps_ref(project: Project, config: DeployConfig, base: BaseImage, version: str | None = None) -> str:
    return tags.image_ref(config.registry, tags.DEPS_REPOSITORY, deps_tag_for(project, config, base, version))


def app_tag_for(project: Project, source: SourceState) -> str:
    """<app version>-<commit12>, with -dirty-<fingerprint> for an uncommitted tree."""
    return tags.app_tag(project.app_version, source.commit, source.dirty_fingerprint)


def build_secrets(config: DeployConfig) -> tuple[str, ...]:
    """BuildKit secrets for the proxy CA and a private index (file paths only, never contents)."""
    secrets = []
    if config.ca_bundle:
        secrets.append(f"id=ca_bundle,src={config.ca_bundle}")
    if config.pip_index_url_file:
        secrets.append(f"id=pip_index_url,src={config.pip_index_url_file}")
    return tuple(secrets)


def deps_plan(project: Project, config: DeployConfig, base: BaseImage, version: str | None = None) -> BuildPlan:
    tag = deps_tag_for(project, config, base, version)
    args = {"DEPS_TAG": tag, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH), "PYTHON_IMAGE": base.pinned}
    return BuildPlan(
        target="deps",
        image=tags.image_ref(config.registry, tags.DEPS_REPOSITORY, tag),
        context=project.root,
        dockerfile=project.dockerfile_path,
        build_args=args,
        secrets=build_secrets(config),
        labels={"org.opencontainers.image.version": tag, **base.labels()},
        platforms=config.platforms,
    )


def app_plan(project: Project, config: DeployConfig, source: SourceState, deps_image: str) -> BuildPlan:
    tag = app_tag_for(project, source)
    return BuildPlan(
        target="runtime",
        image=tags.image_ref(config.registry, tags.APP_REPOSITORY, tag),
        context=project.root,
        dockerfile=project.dockerfile_path,
        build_args={
            "DEPS_IMAGE": deps_image,
            "GIT_COMMIT": source.commit,
            "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
        },
        labels={
            "org.opencontainers.image.version": project.app_version,
            "org.opencontainers.image.revision": source.commit,
            "org.opencontainers.image.created": datetime.fromtimestamp(source.commit_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            # No org.opencontainers.image.base.name: the deps image's tag is in the config already
            # (PRODUCTION_CONTROL_DEPS_TAG), and every server downloads the config with every release.
        },
        base_image=deps_image,
        platforms=config.platforms,
    )


def stage_context(root: Path, destination: Path) -> Path:
    """Copy the source files (tracked and untracked, not ignored) with normalized modes.

    A checkout's modes depend on the umask it was cloned with; the staged copy has
    0644/0755, so the same sources give the same layers on any machine. File
    times are left fresh on purpose: BuildKit sends only context files whose size
    or time changed, so a same-size edit with an unchanged time would be missed.
    The exporter clamps every time in the layers to SOURCE_DATE_EPOCH anyway.
    """
    dirs: set[Path] = {destination}
    for source in source_files(root):  # a deleted file or a link never reaches the image
        target = destination / source.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(0o755 if source.stat().st_mode & 0o111 else 0o644)
        dirs.update(target.parents)
    for directory in (d for d in dirs if d == destination or destination in d.parents):
        directory.chmod(0o755)
    return destination


@dataclass(frozen=True)
class Built:
    """An image built and not pushed yet: what delivery/images/publish.py pushes and the SBOM step reads."""

    plan: BuildPlan
    path: str  # builder.LAYOUT (the image is the OCI layout) or builder.ENGINE (it is in the engine's store)
    layout: Path | None  # its OCI layout: the build's own, or the engine's export of it; None: not exported

    @property
    def image(self) -> str:
        return self.plan.image

    @property
    def tag(self) -> str:
        return self.plan.tag

    @property
    def repository(self) -> str:
        return self.plan.repository

    @property
    def platforms(self) -> tuple[str, ...]:
        return self.plan.platforms

    def descriptor(self) -> dict[str, object]:
        """The layout's one top descriptor (the image's manifest, or a multi-platform build's index)."""
        if self.layout is None:
            raise DeliveryError(f"{self.image} was built into the engine without an export: nothing can read it as a layout")
        return dict(json.loads((self.layout / "index.json").read_text())["manifests"][0])

    @property
    def digest(self) -> str:
        """The digest of what the tag will name: the layout's manifest, or its index for several platforms."""
        return str(self.descriptor()["digest"])


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A directory for one build (its staged context and its layout), removed after its publish."""
    with tempfile.TemporaryDirectory(prefix="production-control-build-") as tmp:
        yield Path(tmp)


def build(docker: DockerClient, plan: BuildPlan, path: str, workdir: Path, report: Reporter, use_cache: bool = True,
          export: bool = False) -> Built:
    """Build `plan` in `workdir` (see `workspace`) on the path the builder takes (builder.LAYOUT or builder.ENGINE); push nothing.

    use_cache=False builds as on a fresh CI runner. `export`: on the engine path, export the built image
    as an OCI layout too (`docker save`), for what reads the image before its push (the SBOM).
    """
    context = stage_context(plan.context, workdir / "context")
    if path != ENGINE:
        layout = workdir / "layout"
        build_logged(docker, plan, context, report, use_cache, output=plan.output(layout))
        return Built(plan, path, layout)
    if plan.base_image:  # the engine then knows the registry's blobs of those layers: push mounts them
        report.step(f"pulling {plan.base_image} into the engine")
        with docker_errors(f"pulling {plan.base_image}", "run `invoke build-deps` first, or check the registry"):
            docker.image.pull(plan.base_image, quiet=True)
    build_logged(docker, plan, context, report, use_cache, tags=[plan.image], load=True)
    if not export:
        return Built(plan, path, None)
    saved = workdir / "saved"
    export_from_engine(docker, plan.image, saved)
    return Built(plan, path, saved)


def build_logged(docker: DockerClient, plan: BuildPlan, context: Path, report: Reporter, use_cache: bool,
                 **output: object) -> None:
    """Run BuildKit on the staged context, reporting its progress; a failure names the failing step and what to do."""
    watcher = BuildProgress(report)
    try:
        lines = docker.buildx.build(
            context,
            file=context / plan.dockerfile.relative_to(plan.context),
            target=plan.target,
            build_args=plan.build_args,
            platforms=list(plan.platforms),
            secrets=list(plan.secrets),
            labels=plan.labels,
            provenance=False,
            cache=use_cache,
            progress="plain",
            stream_logs=True,
            **output,  # type: ignore[arg-type]  # the exporter options: output=, or tags= and load=
        )
        for line in cast(Iterator[str], lines):  # stream_logs=True: BuildKit's log, line by line
            watcher.feed(line)
    except DockerException as exc:
        raise DeliveryError(watcher.failure(f"building {plan.target} ({plan.image})", last_line(exc))) from exc


def export_from_engine(docker: DockerClient, image: str, layout: Path) -> None:
    """The engine's image as an OCI layout (`docker save` writes one since Engine 25), for what reads layouts."""
    layout.mkdir(parents=True)
    archive = layout.parent / "saved.tar"
    with docker_errors(f"exporting {image} from the engine"):
        docker.image.save(image, output=archive)
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    archive.unlink()

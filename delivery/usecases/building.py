"""The build runbooks: build-deps (with refresh), build-app, ci, audit, bump, lock, registry."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient

from delivery.config.hosts import parse_host
from delivery.config.project import Project
from delivery.config.settings import DeployConfig, load_config
from delivery.config.versioning import bump_pyproject
from delivery.docker.engine import connect
from delivery.errors import DeliveryError, OlderDebianPackages, RegistryUnreachable
from delivery.images import build, tags
from delivery.images.base import BaseImage, resolve_base
from delivery.images.builder import BuilderInfo, check_platforms, detect
from delivery.images.publish import publish
from delivery.images.source import read_source_state
from delivery.registry.client import Registry, start_local_registry
from delivery.release.pullreport import human_bytes
from delivery.reporting import Reporter
from delivery.supply import refresh as refreshing
from delivery.supply import sbom
from delivery.supply.audit import IGNORES_FILE, run_audit
from delivery.ui.progress import STDERR
from delivery.usecases.context import ROOT, ensure_registry, login, login_scope, registry_for, settings

# What the build runbooks announce goes to users' stderr, a line per step.
REPORT: Reporter = STDERR


def builder(config: DeployConfig) -> tuple[DockerClient, BuilderInfo]:
    """The local engine's CLI and its current buildx builder, checked before any work: where images are built.

    A builder that cannot build these images, or not for deploy.platforms, stops the task
    here, with the fix (delivery/images/builder.py); the build path it takes is announced when a build starts.
    """
    local = parse_host("local")
    docker = connect(local)
    info = detect(docker, local)
    check_platforms(info, config.platforms)
    return docker, info


# -- lock ---------------------------------------------------------------------------------------
def lock() -> str:
    """Regenerate requirements.lock (runtime, hashed) and requirements-dev.txt from their inputs."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        raise DeliveryError("uv is not installed: run `scripts/setup` (it installs the dev tools)")
    for source, target, header in (
        ("pyproject.toml", "requirements.lock",
         "Locked runtime dependencies of the production image (from pyproject.toml).\n# Regenerate: invoke lock"),
        ("requirements-dev.in", "requirements-dev.txt", "Locked developer/CI tools (from requirements-dev.in). Regenerate: invoke lock"),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            output = Path(tmp) / target
            result = subprocess.run(
                [uv, "pip", "compile", source, "--universal", "--generate-hashes", "--no-header", "--quiet", "-o", str(output)],
                cwd=ROOT, capture_output=True, text=True,
            )
            if result.returncode != 0 or not output.exists() or "==" not in output.read_text():
                detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
                raise DeliveryError(f"locking {source} failed ({detail}): fix the requirement, then `invoke lock` again")
            (ROOT / target).write_text(f"# {header}\n{output.read_text()}")
    return "requirements.lock and requirements-dev.txt updated"


# -- build ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DepsRequest:
    """What `invoke build-deps` was asked for."""

    force: bool = False  # build even when the registry has the image
    use_cache: bool = True  # False: as on a fresh CI runner
    refresh: bool = False  # rebuild on the current base and Debian packages (delivery/supply/refresh.py)


@dataclass(frozen=True)
class DepsJob:
    """A deps build's parts, found once before any build work: the builder, the registry, the base and what it has."""

    config: DeployConfig
    project: Project
    docker: DockerClient
    info: BuilderInfo
    registry: Registry
    base: BaseImage
    pushed: list[str]  # the deps repository's tags
    content_hash: str  # this checkout's deps content hash
    current: str | None  # the version of it the registry has (refreshing.current_version), None: none

    def plan(self, version: str | None) -> build.BuildPlan:
        return build.deps_plan(self.project, self.config, self.base, version)

    def followed(self) -> str | None:
        """The deps tag a new build follows (its Debian packages never go back: refreshing.followed)."""
        return refreshing.followed(self.registry, self.pushed, self.content_hash, self.current, self.base.name)


def build_deps(section: Mapping[str, Any], force: bool = False, use_cache: bool = True, refresh: bool = False) -> dict[str, Any]:
    """Build and push the deps image with its SBOM, unless the registry has it; `refresh`: see delivery/supply/refresh.py."""
    config, project = settings(section)
    with login_scope(config):
        return deps_build(config, project, DepsRequest(force, use_cache, refresh))


def deps_job(config: DeployConfig, project: Project) -> DepsJob:
    docker, info = builder(config)  # an unusable builder: say so before anything else
    base = resolve_base(docker, build.python_image(project, config))
    registry = ensure_registry(config)
    content_hash = build.deps_content_hash(project, config, base)
    pushed = registry.tags(tags.DEPS_REPOSITORY)
    current = refreshing.current_version(pushed, content_hash, project.deps_version)
    return DepsJob(config, project, docker, info, registry, base, pushed, content_hash, current)


def deps_build(config: DeployConfig, project: Project, request: DepsRequest) -> dict[str, Any]:
    """build-deps, within the run's login scope.

    Never with older Debian packages than the deps image it follows (refresh.refuse_older): a build whose `os`
    stage came from an older builder cache would revert Debian updates, so it is built again without cache.
    """
    job = deps_job(config, project)
    if request.refresh:
        return refresh_deps(job)
    plan = job.plan(job.current)
    summary: dict[str, Any] = {"image": plan.image, "base": job.base.pinned}
    if job.current and not request.force:
        REPORT.step(f"{plan.image} is already in the registry: nothing to build (--force rebuilds it)")
        return {**summary, "digest": job.registry.digest(tags.DEPS_REPOSITORY, plan.tag), "built": False}
    previous = job.followed()
    summary["compared_with"] = previous
    login(config, job.docker)
    REPORT.step(job.info.summary())
    REPORT.step(f"building deps image {plan.image} on {job.base.pinned}")
    try:
        digest = deps_once(job, plan, previous, summary, cached=request.use_cache)
    except OlderDebianPackages as older:
        if not request.use_cache:
            raise
        REPORT.step(f"{older}: nothing was pushed; building again without cache (the Debian packages of the moment)")
        digest = deps_once(job, plan, previous, summary, cached=False)
    return {**summary, "digest": digest, "built": True, "sbom": sbom.sbom_tag(plan.tag)}


def deps_once(job: DepsJob, plan: build.BuildPlan, previous: str | None, summary: dict[str, Any], cached: bool) -> str:
    """Build the deps image, make its SBOM, guard its Debian packages against `previous`, push the SBOM, then the image."""
    with build.workspace() as workdir:
        built = build.build(job.docker, plan, job.info.path, workdir, REPORT, use_cache=cached, export=True)
        text = sbom.make_for(built, job.base, job.project.lock_path.read_text(), REPORT)
        summary.update(refreshing.guard(job.registry, previous, text, cached, REPORT))
        sbom.publish_for(job.registry, built, text, REPORT)
        return publish(job.docker, job.registry, built, REPORT)


def refresh_deps(job: DepsJob) -> dict[str, Any]:
    """Rebuild without cache on the current base and Debian packages; push only what differs, as the next patch.

    With a new base digest there is no deps image of this content hash yet: it is pushed, and
    compared with the last deps image built on the same base name (what servers run now).
    """
    plan = job.plan(refreshing.refresh_version(job.pushed, job.content_hash, job.project.deps_version))
    previous = job.followed()
    result: dict[str, Any] = {"image": plan.image, "base": job.base.pinned, "refresh": True, "built": False,
                              "base_changed": job.current is None, "compared_with": previous}
    login(job.config, job.docker)
    REPORT.step(job.info.summary())
    REPORT.step(f"refreshing the deps image on {job.base.pinned}, without cache (current base and Debian packages)")
    with build.workspace() as workdir:
        built = build.build(job.docker, plan, job.info.path, workdir, REPORT, use_cache=False, export=True)
        text = sbom.make_for(built, job.base, job.project.lock_path.read_text(), REPORT)
        if refresh_differs(job, built, previous, text, result):
            sbom.publish_for(job.registry, built, text, REPORT)
            digest = publish(job.docker, job.registry, built, REPORT)
        else:
            digest = built.digest
    if job.current is not None and result.get("identical"):
        result.update(image=job.plan(job.current).image,
                      digest=job.registry.digest(tags.DEPS_REPOSITORY, tags.deps_tag(job.current, job.content_hash)))
    else:
        result.update(digest=digest, built=True, sbom=sbom.sbom_tag(plan.tag))
    return result


def refresh_differs(job: DepsJob, built: build.Built, previous: str | None, sbom_text: str, result: dict[str, Any]) -> bool:
    """Whether the refreshed image is pushed: it differs from `previous` (its comparison goes into `result`), or
    nothing came before it on this base. Its Debian packages never go back (refreshing.refuse_older)."""
    if previous is None:
        REPORT.step(f"no earlier deps image on {job.base.name} to compare with: pushing {built.image}")
        return True
    assert built.layout is not None  # made with export=True
    comparison = refreshing.compare_with(job.registry, previous, built.image, built.layout, sbom_text)
    result.update(comparison)
    refreshing.refuse_older(comparison, cached=False)
    if comparison["identical"] and job.current is not None:
        REPORT.step(f"the rebuilt image has the layers of {previous}: nothing to push")
        return False
    if job.current is None:
        REPORT.step(f"the base {job.base.name} now points at {job.base.digest}: a new deps image")
    for change in comparison["debian_changes"]:
        REPORT.step(f"  debian  {change}")
    for p in comparison["predicted_pull"]:
        REPORT.step(f"  predicted pull on a server with the {p['store']} store ({p['platform']}) running {previous}: "
                    f"{p['pulled_layers']}/{p['total_layers']} layers, "
                    f"{human_bytes(p['pulled_bytes'])} of {human_bytes(p['total_bytes'])}")
    return True


def current_deps_ref(config: DeployConfig, project: Project, registry: Registry, docker: DockerClient) -> str:
    """The deps image a build of this checkout is FROM: the newest refresh of its content hash."""
    base = resolve_base(docker, build.python_image(project, config))
    content_hash = build.deps_content_hash(project, config, base)
    current = refreshing.current_version(registry.tags(tags.DEPS_REPOSITORY), content_hash, project.deps_version)
    if current is None:
        raise DeliveryError(
            f"{build.deps_ref(project, config, base)} is not in the registry (the deps inputs or the base image "
            "changed, or the registry is new): run `invoke build-deps` first"
        )
    return build.deps_ref(project, config, base, current)


def build_app(section: Mapping[str, Any], use_cache: bool = True) -> dict[str, Any]:
    config, project = settings(section)
    with login_scope(config):
        return app_build(config, project, use_cache)


def app_build(config: DeployConfig, project: Project, use_cache: bool) -> dict[str, Any]:
    """build-app, within the run's login scope."""
    docker, info = builder(config)  # missing CLI, plugin, engine or a usable builder: say so before anything else
    login(config, docker)
    registry = ensure_registry(config)
    deps_image = current_deps_ref(config, project, registry, docker)
    source = read_source_state(ROOT)
    plan = build.app_plan(project, config, source, deps_image)
    if source.dirty_fingerprint:
        REPORT.step("the work tree has uncommitted changes: tagging the build as -dirty-")
    REPORT.step(info.summary())
    REPORT.step(f"building app image {plan.image} FROM {deps_image}")
    with build.workspace() as workdir:
        digest = publish(docker, registry, build.build(docker, plan, info.path, workdir, REPORT, use_cache=use_cache), REPORT)
    return {"image": plan.image, "digest": digest, "tag": plan.tag, "deps": deps_image}


# -- ci -------------------------------------------------------------------------------------------
def ci(section: Mapping[str, Any], tests: str = "unit") -> dict[str, Any]:
    """What CI runs on each push: the tests, then build-deps (a no-op unless its inputs changed), then build-app."""
    if tests != "none":
        paths = ["tests/unit"] if tests == "unit" else []
        REPORT.step(f"running the {'unit' if paths else 'whole'} test suite")
        # The test report is progress: it goes to stderr, so `invoke ci --json` prints only JSON on stdout.
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths], cwd=ROOT,
                                stdout=sys.stderr)
        if result.returncode != 0:
            raise DeliveryError("tests failed: nothing was built or pushed; fix them and push again")
    REPORT.step("auditing the locked Python packages")
    audited = audit(section)
    REPORT.step(f"audit: {audited['audited']} locked packages, no known vulnerability without a dated ignore")
    deps = build_deps(section)
    app = build_app(section)
    return {"audit": audited, "deps": deps, "app": app}


# -- audit ------------------------------------------------------------------------------------------
def audit(section: Mapping[str, Any], lock: Path | None = None) -> dict[str, Any]:
    """Audit the locked Python packages (delivery/supply/audit.py); fail on what the policy does not allow."""
    config = load_config(section)
    target = lock or ROOT / "requirements.lock"
    if not target.is_file():
        raise DeliveryError(f"{target} does not exist: give the path of a requirements lock")
    result = run_audit(target, ROOT / IGNORES_FILE, ca_bundle=config.ca_bundle, osv_url=config.audit_osv_url)
    if not result.ok:
        raise DeliveryError(result.failure())
    return result.as_dict()


def bump(part: str, deps: bool = False) -> tuple[str, str]:
    return bump_pyproject(ROOT / "pyproject.toml", part, deps=deps)


def registry_up(section: Mapping[str, Any]) -> str:
    config = load_config(section)
    registry = registry_for(config)
    try:
        registry.ping()
        return f"registry {config.registry} is running"
    except RegistryUnreachable:
        return f"started {start_local_registry(config.registry)} at {config.registry}"

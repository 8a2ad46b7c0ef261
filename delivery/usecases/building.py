"""The build runbooks: build-deps (with refresh), build-app, ci, audit, bump, lock, registry."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from delivery.config.hosts import parse_host
from delivery.config.project import Project
from delivery.config.settings import DeployConfig, load_config
from delivery.config.versioning import bump_pyproject
from delivery.docker.engine import connect
from delivery.errors import DeliveryError
from delivery.images import build, tags
from delivery.images.base import BaseImage, resolve_base
from delivery.images.builder import BuilderInfo, check_platforms, detect
from delivery.images.source import read_source_state
from delivery.registry.client import Registry, RegistryUnreachable, start_local_registry
from delivery.release.pullreport import human_bytes
from delivery.supply import refresh as refreshing
from delivery.supply import sbom
from delivery.supply.audit import IGNORES_FILE, run_audit
from delivery.usecases.context import ROOT, ensure_registry, login, login_scope, registry_for, say, settings


def builder(config: DeployConfig) -> tuple[Any, BuilderInfo]:
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
        ("pyproject.toml", "requirements.lock", "Locked runtime dependencies of the production image (from pyproject.toml).\n# Regenerate: invoke lock"),
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
def build_deps(section: Mapping[str, Any], force: bool = False, use_cache: bool = True, refresh: bool = False) -> dict[str, Any]:
    """Build and push the deps image with its SBOM, unless the registry has it; `refresh`: see delivery/supply/refresh.py."""
    config, project = settings(section)
    with login_scope(config):
        return deps_build(config, project, force, use_cache, refresh)


def deps_build(config: DeployConfig, project: Project, force: bool, use_cache: bool, refresh: bool) -> dict[str, Any]:
    """build-deps, within the run's login scope.

    Never with older Debian packages than the deps image it follows (refresh.refuse_older): a build whose `os`
    stage came from an older builder cache would revert Debian updates, so it is built again without cache.
    """
    docker, info = builder(config)  # an unusable builder: say so before anything else
    base = resolve_base(docker, build.python_image(project, config))
    registry = ensure_registry(config)
    content_hash = tags.parse_deps_tag(build.deps_tag_for(project, config, base)).content_hash
    pushed = registry.tags(tags.DEPS_REPOSITORY)
    current = refreshing.current_version(pushed, content_hash, project.deps_version)
    if refresh:
        return refresh_deps(docker, info, registry, config, project, base, pushed, content_hash, current)
    plan = build.deps_plan(project, config, base, current)
    summary = {"image": plan.image, "base": base.pinned}
    if current and not force:
        say(f"{plan.image} is already in the registry: nothing to build (--force rebuilds it)")
        return {**summary, "digest": registry.digest(tags.DEPS_REPOSITORY, plan_tag(plan)), "built": False}
    previous = refreshing.followed(registry, pushed, content_hash, current, base.name)
    summary["compared_with"] = previous

    def build_once(cached: bool) -> str:
        def decide(layout: Path, sbom_text: str) -> bool:
            """Never push older Debian packages than the image this one follows; say which ones moved."""
            if previous is not None:
                comparison = refreshing.debian_against(registry, previous, sbom_text)
                summary.update(comparison)
                refreshing.refuse_older(comparison, cached=cached)
                moved = refreshing.debian_moved(comparison)
                if moved:
                    say(moved)
            return True

        return build.run_build(docker, registry, plan, info.path, say, use_cache=cached,
                               before_push=sbom_step(registry, project, plan, base, decide))

    login(config, docker)
    say(info.summary())
    say(f"building deps image {plan.image} on {base.pinned}")
    try:
        digest = build_once(use_cache)
    except refreshing.OlderDebianPackages as older:
        if not use_cache:
            raise
        say(f"{older}: nothing was pushed; building again without cache (the Debian packages of the moment)")
        digest = build_once(cached=False)
    return {**summary, "digest": digest, "built": True, "sbom": sbom.sbom_tag(plan_tag(plan))}


def plan_tag(plan: build.BuildPlan) -> str:
    return plan.image.rsplit(":", 1)[1]


def sbom_step(registry: Registry, project: Project, plan: build.BuildPlan, base: BaseImage,
              decide: Callable[[Path, str], bool] | None = None) -> Callable[[Path], bool]:
    """Before the image is pushed: make its SBOM (a failure fails the build), let `decide` stop the push, push the SBOM."""

    def step(layout: Path) -> bool:
        say("making the SBOM (CycloneDX: the locked Python packages, the image's Debian packages)")
        text = sbom.sbom_for_layout(layout, plan.image, base, project.lock_path.read_text())
        if decide is not None and not decide(layout, text):
            return False
        descriptor = json.loads((layout / "index.json").read_text())["manifests"][0]
        sbom.push_sbom(registry, tags.DEPS_REPOSITORY, plan_tag(plan), text, descriptor)
        say(f"pushed the SBOM as {plan.image.rsplit(':', 1)[0]}:{sbom.sbom_tag(plan_tag(plan))}")
        return True

    return step


def refresh_deps(docker, info: BuilderInfo, registry: Registry, config: DeployConfig, project: Project, base: BaseImage,
                 pushed: list[str], content_hash: str, current: str | None) -> dict[str, Any]:
    """Rebuild without cache on the current base and Debian packages; push only what differs, as the next patch.

    With a new base digest there is no deps image of this content hash yet: it is pushed, and
    compared with the last deps image built on the same base name (what servers run now).
    """
    version = refreshing.refresh_version(pushed, content_hash, project.deps_version)
    plan = build.deps_plan(project, config, base, version)
    previous = refreshing.followed(registry, pushed, content_hash, current, base.name)
    result: dict[str, Any] = {"image": plan.image, "base": base.pinned, "refresh": True, "built": False,
                              "base_changed": current is None, "compared_with": previous}

    def decide(layout: Path, sbom_text: str) -> bool:
        if previous is None:
            say(f"no earlier deps image on {base.name} to compare with: pushing {plan.image}")
            return True
        comparison = refreshing.compare_with(registry, previous, plan.image, layout, sbom_text)
        result.update(comparison)
        refreshing.refuse_older(comparison, cached=False)
        if comparison["identical"] and current is not None:
            say(f"the rebuilt image has the layers of {previous}: nothing to push")
            return False
        if current is None:
            say(f"the base {base.name} now points at {base.digest}: a new deps image")
        for change in comparison["debian_changes"]:
            say(f"  debian  {change}")
        for p in comparison["predicted_pull"]:
            say(f"  predicted pull on a server with the {p['store']} store ({p['platform']}) running {previous}: "
                f"{p['pulled_layers']}/{p['total_layers']} layers, "
                f"{human_bytes(p['pulled_bytes'])} of {human_bytes(p['total_bytes'])}")
        return True

    login(config, docker)
    say(info.summary())
    say(f"refreshing the deps image on {base.pinned}, without cache (current base and Debian packages)")
    digest = build.run_build(docker, registry, plan, info.path, say, use_cache=False,
                             before_push=sbom_step(registry, project, plan, base, decide))
    if current is not None and result.get("identical"):
        result.update(image=build.deps_ref(project, config, base, current),
                      digest=registry.digest(tags.DEPS_REPOSITORY, tags.deps_tag(current, content_hash)))
    else:
        result.update(digest=digest, built=True, sbom=sbom.sbom_tag(plan_tag(plan)))
    return result


def current_deps_ref(config: DeployConfig, project: Project, registry: Registry, docker) -> str:
    """The deps image a build of this checkout is FROM: the newest refresh of its content hash."""
    base = resolve_base(docker, build.python_image(project, config))
    content_hash = tags.parse_deps_tag(build.deps_tag_for(project, config, base)).content_hash
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
        say("the work tree has uncommitted changes: tagging the build as -dirty-")
    say(info.summary())
    say(f"building app image {plan.image} FROM {deps_image}")
    digest = build.run_build(docker, registry, plan, info.path, say, use_cache=use_cache)
    return {"image": plan.image, "digest": digest, "tag": plan.image.rsplit(":", 1)[1], "deps": deps_image}


# -- ci -------------------------------------------------------------------------------------------
def ci(section: Mapping[str, Any], tests: str = "unit") -> dict[str, Any]:
    """What CI runs on each push: the tests, then build-deps (a no-op unless its inputs changed), then build-app."""
    if tests != "none":
        paths = ["tests/unit"] if tests == "unit" else []
        say(f"running the {'unit' if paths else 'whole'} test suite")
        # The test report is progress: it goes to stderr, so `invoke ci --json` prints only JSON on stdout.
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths], cwd=ROOT,
                                stdout=sys.stderr)
        if result.returncode != 0:
            raise DeliveryError("tests failed: nothing was built or pushed; fix them and push again")
    say("auditing the locked Python packages")
    audited = audit(section)
    say(f"audit: {audited['audited']} locked packages, no known vulnerability without a dated ignore")
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

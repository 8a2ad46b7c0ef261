"""The runbooks behind the invoke tasks: read config once, announce each step, call one function.

Each function raises DeliveryError for anything a user can fix; tasks.py turns
that into one line and a non-zero exit. Progress goes to stderr, results to
stdout (as JSON with --json), so scripts can read them.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery import build, sbom, tags
from delivery import refresh as refreshing
from delivery.audit import IGNORES_FILE, run_audit
from delivery.base import BaseImage, resolve_base
from delivery.config import DeployConfig, Host, load_config, parse_host
from delivery.deploy import DeployReport, Target, predict_pull, resolve_release
from delivery import deploy as deploying
from delivery.engine import check_engine, connect, require_cli
from delivery.errors import DeliveryError
from delivery.lock import release_lock
from delivery.project import Project, load_project
from delivery.pullreport import human_bytes
from delivery.registry import Registry, RegistryUnreachable, is_loopback, start_local_registry
from delivery.source import read_source_state
from delivery.versioning import bump_pyproject

ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(result: Any, as_json: bool, human: str) -> None:
    print(json.dumps(result, indent=2, sort_keys=True) if as_json else human, flush=True)


def settings(section: Mapping[str, Any]) -> tuple[DeployConfig, Project]:
    return load_config(section), load_project(ROOT)


def registry_for(config: DeployConfig) -> Registry:
    password = os.environ.get(config.registry_password_env) if config.registry_user else None
    return Registry(config.registry, config.registry_user, password)


def ensure_registry(config: DeployConfig) -> Registry:
    """The configured registry, started on demand when it is the default local one."""
    registry = registry_for(config)
    try:
        registry.ping()
    except RegistryUnreachable:
        if not is_loopback(config.registry):
            raise
        say(f"registry {config.registry} is not running: starting a local one")
        say(f"started {start_local_registry(config.registry)}")
    return registry


def login(config: DeployConfig, docker) -> None:
    """Log the docker CLI in when the registry needs credentials (the password goes by stdin, never argv or output)."""
    if not config.registry_user:
        return
    password = os.environ.get(config.registry_password_env)
    if not password:
        raise DeliveryError(f"deploy.registry_user is set but ${config.registry_password_env} is empty: export the registry password")
    try:  # python-on-whales' docker.login lets "Login Succeeded" reach stdout, which --json needs clean
        run(docker.docker_cmd + ["login", config.registry, "--username", config.registry_user, "--password-stdin"],
            input=password.encode())
    except DockerException as exc:
        raise DeliveryError(
            f"docker login to {config.registry} as {config.registry_user} failed: check ${config.registry_password_env}"
        ) from exc


def builder(config: DeployConfig):
    """The local engine, checked for buildx and logged in to the registry: where images are built."""
    local = parse_host("local")
    docker = connect(local)
    check_engine(docker, local, need_buildx=True)
    login(config, docker)
    return docker


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
    """Build and push the deps image with its SBOM, unless the registry has it; `refresh`: see delivery/refresh.py."""
    config, project = settings(section)
    docker = builder(config)
    base = resolve_base(docker, build.python_image(project, config), config.python_image_source)
    registry = ensure_registry(config)
    content_hash = tags.parse_deps_tag(build.deps_tag_for(project, config, base)).content_hash
    pushed = registry.tags(tags.DEPS_REPOSITORY)
    current = refreshing.current_version(pushed, content_hash, project.deps_version)
    if refresh:
        return refresh_deps(docker, registry, config, project, base, pushed, content_hash, current)
    plan = build.deps_plan(project, config, base, current)
    summary = {"image": plan.image, "base": base.pinned}
    if current and not force:
        say(f"{plan.image} is already in the registry: nothing to build (--force rebuilds it)")
        return {**summary, "digest": registry.manifest(tags.DEPS_REPOSITORY, plan_tag(plan)).digest, "built": False}
    say(f"building deps image {plan.image} on {base.pinned}")
    digest = build.run_build(docker, registry, plan, say, use_cache=use_cache, before_push=sbom_step(registry, project, plan, base))
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


def refresh_deps(docker, registry: Registry, config: DeployConfig, project: Project, base: BaseImage,
                 pushed: list[str], content_hash: str, current: str | None) -> dict[str, Any]:
    """Rebuild without cache on the current base and Debian packages; push only what differs, as the next patch.

    With a new base digest there is no deps image of this content hash yet: it is pushed, and
    compared with the last deps image built on the same base name (what servers run now).
    """
    version = refreshing.refresh_version(pushed, content_hash, project.deps_version)
    plan = build.deps_plan(project, config, base, version)
    previous = tags.deps_tag(current, content_hash) if current else refreshing.previous_for_base(registry, pushed, base.name)
    result: dict[str, Any] = {"image": plan.image, "base": base.pinned, "refresh": True, "built": False,
                              "base_changed": current is None, "compared_with": previous}

    def decide(layout: Path, sbom_text: str) -> bool:
        if previous is None:
            say(f"no earlier deps image on {base.name} to compare with: pushing {plan.image}")
            return True
        comparison = refreshing.compare_with(registry, previous, plan.image, layout, sbom_text)
        result.update(comparison)
        if comparison["identical"] and current is not None:
            say(f"the rebuilt image has the layers of {previous}: nothing to push")
            return False
        if current is None:
            say(f"the base {base.name} now points at {base.digest}: a new deps image")
        for change in comparison["debian_changes"]:
            say(f"  debian  {change}")
        for p in comparison["predicted_pull"]:
            say(f"  predicted pull on a server with the {p['store']} store running {previous}: {p['pulled_layers']}/{p['total_layers']} layers, "
                f"{human_bytes(p['pulled_bytes'])} of {human_bytes(p['total_bytes'])}")
        return True

    say(f"refreshing the deps image on {base.pinned}, without cache (current base and Debian packages)")
    digest = build.run_build(docker, registry, plan, say, use_cache=False,
                             before_push=sbom_step(registry, project, plan, base, decide))
    if current is not None and result.get("identical"):
        result.update(image=build.deps_ref(project, config, base, current),
                      digest=registry.manifest(tags.DEPS_REPOSITORY, tags.deps_tag(current, content_hash)).digest)
    else:
        result.update(digest=digest, built=True, sbom=sbom.sbom_tag(plan_tag(plan)))
    return result


def current_deps_ref(config: DeployConfig, project: Project, registry: Registry, docker) -> str:
    """The deps image a build of this checkout is FROM: the newest refresh of its content hash."""
    base = resolve_base(docker, build.python_image(project, config), config.python_image_source)
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
    docker = builder(config)  # missing CLI, plugin or engine: say so before anything else
    registry = ensure_registry(config)
    deps_image = current_deps_ref(config, project, registry, docker)
    source = read_source_state(ROOT)
    plan = build.app_plan(project, config, source, deps_image)
    if source.dirty_fingerprint:
        say("the work tree has uncommitted changes: tagging the build as -dirty-")
    say(f"building app image {plan.image} FROM {deps_image}")
    digest = build.run_build(docker, registry, plan, say, use_cache=use_cache)
    return {"image": plan.image, "digest": digest, "tag": plan.image.rsplit(":", 1)[1], "deps": deps_image}


# -- ci -------------------------------------------------------------------------------------------
def ci(section: Mapping[str, Any], tests: str = "unit") -> dict[str, Any]:
    """What CI runs on each push: the tests, then build-deps (a no-op unless its inputs changed), then build-app."""
    if tests != "none":
        paths = ["tests/unit"] if tests == "unit" else []
        say(f"running the {'unit' if paths else 'whole'} test suite")
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths], cwd=ROOT)
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
    """Audit the locked Python packages (delivery/audit.py); fail on what the policy does not allow."""
    config = load_config(section)
    target = lock or ROOT / "requirements.lock"
    if not target.is_file():
        raise DeliveryError(f"{target} does not exist: give the path of a requirements lock")
    result = run_audit(target, ROOT / IGNORES_FILE, ca_bundle=config.ca_bundle, osv_url=config.audit_osv_url)
    if not result.ok:
        raise DeliveryError(result.failure())
    return result.as_dict()


# -- deploy ----------------------------------------------------------------------------------------
def hosts_from(config: DeployConfig, hosts: Iterable[str]) -> list[Host]:
    return [parse_host(h) for h in (list(hosts) or list(config.hosts))]


def current_version(project: Project) -> str:
    return build.app_tag_for(project, read_source_state(ROOT))


@contextlib.contextmanager
def opened(host: Host, config: DeployConfig) -> Iterator[Target]:
    target = Target(host, config, ROOT / "docker-compose.yml")
    try:
        yield target
    finally:
        target.close()


def each_host(config: DeployConfig, hosts: list[Host], action: Callable[[Target], Any], what: str) -> list[dict[str, Any]]:
    """Run `action` on each host in turn; stop at the first unhealthy DeployReport."""
    results: list[dict[str, Any]] = []
    for host in hosts:
        with opened(host, config) as target:
            result = action(target)
        if isinstance(result, DeployReport):
            results.append(result.as_dict())
            if not result.healthy:
                raise DeployFailed(result.error or f"{what} failed", results)
        else:
            results.append(result)
    return results


def deploy(section: Mapping[str, Any], hosts: Iterable[str] = (), version: str | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
    """Deploy to each host in turn; stop at the first failure (its report says whether it rolled back)."""
    config, project = settings(section)
    targets = hosts_from(config, hosts)  # validate every host before touching any
    require_cli()
    release = resolve_release(registry_for(config), config, version or current_version(project))

    def predict(target: Target) -> dict[str, Any]:
        return {"host": target.host.label, **predict_pull(target, release).as_dict(), "dry_run": True}

    def deploy_one(target: Target) -> DeployReport:
        login(config, target.docker)  # the host pulls with the credentials of this machine's docker CLI
        return deploying.deploy(target, release, say)

    return each_host(config, targets, predict if dry_run else deploy_one, "deploy")


class DeployFailed(DeliveryError):
    """A deploy that failed after doing something: carries the reports so far (for --json)."""

    def __init__(self, message: str, reports: list[dict[str, Any]]):
        super().__init__(message)
        self.reports = reports


def format_report(report: Mapping[str, Any]) -> str:
    if report.get("dry_run"):
        return (f"{report['host']}: {report['image']} would pull {report['pulled_layers']}/{report['total_layers']} layers, "
                f"{human_bytes(report['pulled_bytes'])} of {human_bytes(report['total_bytes'])} ({report['store']} store)")
    lines = [
        f"host            {report['host']} ({report['store']} image store)",
        f"image           {report['image']}",
        f"digest          {report['digest']}",
        f"previous        {report['previous'] or 'none'}",
        f"layers pulled   {report['pulled_layers']}/{report['total_layers']}",
        f"bytes pulled    {human_bytes(report['pulled_bytes'])} of {human_bytes(report['total_bytes'])}",
        f"pull time       {report['pull_seconds']:.2f}s",
        f"healthy after   {report['seconds_to_healthy']}s" if report["healthy"] else f"healthy         no ({report['error']})",
    ]
    if report["rolled_back"]:
        lines.append("rolled back     yes")
    return "\n".join(lines)


def rollback(section: Mapping[str, Any], hosts: Iterable[str] = (), to: str | None = None) -> list[dict[str, Any]]:
    config = load_config(section)
    return each_host(config, hosts_from(config, hosts), lambda target: deploying.rollback(target, say, to), "rollback")


def status(section: Mapping[str, Any], hosts: Iterable[str] = ()) -> list[dict[str, Any]]:
    config = load_config(section)
    registry = registry_for(config)
    return each_host(config, hosts_from(config, hosts), lambda t: with_freshness(t, deploying.status(t), registry), "status")


def with_freshness(target: Target, entry: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The status entry plus the running image's base digest, deps age and newer deps image (delivery/refresh.py)."""
    running = entry.get("running")
    if running:
        try:
            image = target.docker.image.inspect(running["image"])
            entry["deps"] = refreshing.deps_freshness(image.config.labels or {}, image.config.env or [], registry)
        except (DeliveryError, DockerException) as exc:  # status still answers with the registry down
            entry["deps"] = {"error": str(exc).splitlines()[0]}
    return entry


def format_status(entry: Mapping[str, Any]) -> str:
    running = entry["running"]
    lines = [f"{entry['host']}  engine {entry['engine']}, {entry['image_store']} image store"]
    if running:
        lines.append(f"  running   {running['tag']}  {running['state']}/{running['health']}  since {running['started_at']}")
        lines.append(f"  digest    {running['digest']}")
    else:
        lines.append("  running   nothing (first deploy: `invoke deploy`)")
    if entry.get("deps"):
        lines.append(refreshing.format_freshness(entry["deps"]))
    if entry["lock"]:
        lines.append(f"  lock      {entry['lock']}")
    lines.append("  history (newest first):")
    for item in entry["history"][:10] or []:
        lines.append(f"    {item['time']}  {item['kind']:<8} {item['tag']}")
    if not entry["history"]:
        lines.append("    (none)")
    return "\n".join(lines)


def unlock(section: Mapping[str, Any], hosts: Iterable[str] = ()) -> list[str]:
    config = load_config(section)
    done = []
    for host in hosts_from(config, hosts):
        docker = connect(host)
        check_engine(docker, host)
        done.append(f"{host.label}: {'removed a stale deploy lock' if release_lock(docker, config.compose_project) else 'no deploy lock was held'}")
    return done


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

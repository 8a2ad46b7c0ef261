"""The runbooks behind the invoke tasks: read config once, announce each step, call one function.

Each function raises DeliveryError for anything a user can fix; tasks.py turns
that into one line and a non-zero exit. Progress goes to stderr, results to
stdout (as JSON with --json), so scripts can read them.
"""
from __future__ import annotations

import contextlib
import dataclasses
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

from delivery.registry import auth
from delivery.images import build
from delivery.config import platforms
from delivery.supply import sbom
from delivery.images import tags
from delivery.supply import refresh as refreshing
from delivery.supply.audit import IGNORES_FILE, run_audit
from delivery.images.base import BaseImage, resolve_base
from delivery.images.builder import BuilderInfo, check_platforms, detect
from delivery.config.settings import DeployConfig, Host, keep_count, load_config, parse_host, wait_seconds
from delivery.deploy.compose.handover import DeployReport, Target, predict_pull, resolve_release
from delivery.deploy.compose import handover as deploying
from delivery.deploy.swarm import rollout as swarming
from delivery.docker.engine import check_engine, connect, private_config, private_docker_config, require_cli
from delivery.errors import DeliveryError
from delivery.ops import jobs
from delivery.ops import logs as container_logs
from delivery.hosts import retention
from delivery.hosts.lock import unlock as unlock_lock
from delivery.hosts.services import compose_services
from delivery.config.project import Project, load_project
from delivery.release.pullreport import human_bytes
from delivery.registry.client import Registry, RegistryUnreachable, is_loopback, start_local_registry
from delivery.images.source import read_source_state
from delivery.config.versioning import bump_pyproject

ROOT = Path(__file__).resolve().parents[2]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(result: Any, as_json: bool, human: str) -> None:
    print(json.dumps(result, indent=2, sort_keys=True) if as_json else human, flush=True)


def settings(section: Mapping[str, Any]) -> tuple[DeployConfig, Project]:
    return load_config(section), load_project(ROOT)


def registry_for(config: DeployConfig) -> Registry:
    """The configured registry, with the credentials the docker CLI has for it, else the configured ones."""
    return Registry(config.registry, auth.resolve(config.registry, config.registry_user, config.registry_password_env))


def ensure_registry(config: DeployConfig) -> Registry:
    """The configured registry, started on demand when it is the default local one."""
    registry = registry_for(config)
    if not is_loopback(config.registry):
        return registry  # a remote registry's failures are reported by the first real request
    try:
        registry.ping()
    except RegistryUnreachable:
        say(f"registry {config.registry} is not running: starting a local one")
        say(f"started {start_local_registry(config.registry)}")
    return registry


@contextlib.contextmanager
def login_scope(config: DeployConfig) -> Iterator[None]:
    """The docker CLI config of a task run: when the run logs in itself (deploy.registry_user), a private one.

    `docker login` would keep the password in the user's ~/.docker/config.json for ever; so the run's
    clients use a copy of that config made for it (delivery/docker/engine.py, private_docker_config), in which
    `login` stores only this registry's login, and which is removed when the run ends: after an error
    or a signal too. With credentials the docker CLI has already, or none, nothing changes.
    """
    credentials = auth.resolve(config.registry, config.registry_user, config.registry_password_env)
    if not auth.logs_in(credentials):
        yield
        return
    user_dir = auth.docker_config_path(os.environ).parent
    document = auth.private_config_document(auth.read_docker_config(user_dir / "config.json"), auth.registry_host(config.registry))
    with private_docker_config(user_dir, document):
        yield


def login(config: DeployConfig, docker) -> None:
    """Log the docker CLI in with the configured credentials, unless it has its own for the registry.

    The engines pull (and BuildKit reads the deps image) with the CLI's credentials. The
    password goes by stdin, never argv or output, and only into the run's private config (login_scope).
    """
    credentials = auth.resolve(config.registry, config.registry_user, config.registry_password_env)
    if not auth.logs_in(credentials):
        return  # anonymous, or the docker CLI already has credentials for it
    assert credentials is not None
    host = auth.registry_host(config.registry)
    private = private_config()
    if private is None or str(private) not in [str(part) for part in docker.docker_cmd]:
        raise DeliveryError(f"refusing to log the docker CLI in to {host} in the user's own config, where the password "
                            "would stay: this task must run within login_scope (a bug in the toolkit)")
    try:  # python-on-whales' docker.login lets "Login Succeeded" reach stdout, which --json needs clean
        run(docker.docker_cmd + ["login", host, "--username", credentials.username, "--password-stdin"],
            input=credentials.secret.encode())
    except DockerException as exc:
        raise DeliveryError(
            f"docker login to {host} as {credentials.username} failed: check ${config.registry_password_env}"
        ) from exc


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


def doctor(section: Mapping[str, Any]) -> dict[str, Any]:
    """Which builder the build tasks would use and which path they would take; fails, naming the fix, when none."""
    config = load_config(section)
    local = parse_host("local")
    info = detect(connect(local), local)
    try:
        check_platforms(info, config.platforms)
        problem = None
    except DeliveryError as exc:
        problem = str(exc)
    buildable = [info.native] if not info.reproducible else [  # the classic store: its own platform only
        p for p in platforms.SUPPORTED if not platforms.missing_from_builder([p], (info.native, *info.platforms))]
    return {"builder": info.as_dict(), "registry": config.registry, "platforms": list(config.platforms),
            "buildable": buildable, "platforms_problem": problem}


def format_doctor(result: Mapping[str, Any]) -> str:
    b = result["builder"]
    lines = [
        f"builder       {b['name']} ({b['driver']} driver, {b['status'] or 'status unknown'})",
        f"BuildKit      {b['buildkit']}",
        f"engine        Docker Engine {b['engine']}, {b['image_store']} image store",
        f"build path    {b['path']}: " + ("reproducible OCI layout, pushed by the toolkit (same commit, same digest)"
                                          if b["reproducible"] else "built into the engine, pushed with docker push"),
    ]
    if not b["reproducible"]:
        lines.append(f"loses         {b['loses']}")
        lines.append(f"reproducible  {b['to_reproducible']}")
    if result.get("platforms"):
        lines.append(f"platforms     {', '.join(result['platforms'])} (deploy.platforms); this builder can build "
                     f"{', '.join(result.get('buildable') or []) or 'none of them'}")
    if result.get("platforms_problem"):
        lines.append(f"cannot build  {result['platforms_problem']}")
    lines.append(f"registry      {result['registry']}")
    return "\n".join(lines)


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
    """Run `action` on each host in turn; stop at the first failure, keeping the reports of the hosts before it."""
    results: list[dict[str, Any]] = []
    for host in hosts:
        try:
            with opened(host, config) as target:
                result = action(target)
        except DeliveryError as exc:
            if not results:
                raise
            results.append({"host": host.label, "error": str(exc)})
            raise DeployFailed(f"{what} on {host.label} failed: {exc} (hosts before it: {_outcomes(results[:-1])})", results) from exc
        if isinstance(result, DeployReport):
            results.append(result.as_dict())
            if not result.healthy:
                message = result.error or f"{what} failed"
                if len(results) > 1:
                    message += f" (hosts before it: {_outcomes(results[:-1])})"
                raise DeployFailed(message, results)
        else:
            results.append(result)
    return results


def _outcomes(results: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['host']} {'runs ' + r['version'] if r.get('version') else 'done'}" for r in results)


def deploy(section: Mapping[str, Any], hosts: Iterable[str] = (), version: str | None = None, dry_run: bool = False,
           lock_wait: str | float | None = None) -> list[dict[str, Any]]:
    """Deploy to each host in turn; stop at the first failure (its report says whether it rolled back)."""
    config, project = settings(section)
    if lock_wait is not None:  # --lock-wait over deploy.lock_wait
        config = dataclasses.replace(config, lock_wait=wait_seconds("--lock-wait", lock_wait))
    targets = hosts_from(config, hosts)  # validate every host before touching any
    require_cli()
    release = resolve_release(registry_for(config), config, version or current_version(project))

    def predict(target: Target) -> dict[str, Any]:
        variant = release.variant(target.info.platform, target.host.label)
        return {"host": target.host.label, "platform": variant.platform, **predict_pull(target, variant, release.image).prediction(),
                "dry_run": True}

    def deploy_one(target: Target) -> DeployReport:
        release.variant(target.info.platform, target.host.label)  # a release without the host's platform: nothing changes
        login(config, target.docker)  # the host pulls with the credentials of this machine's docker CLI
        return deploying.deploy(target, release, say)

    with login_scope(config):
        if config.mode == "swarm":
            return [swarm_run(config, targets, lambda manager: swarming.deploy(
                manager, config, ROOT, release, say, dry_run=dry_run, login=lambda docker: login(config, docker)))]
        return each_host(config, targets, predict if dry_run else deploy_one, "deploy")


class DeployFailed(DeliveryError):
    """A deploy that failed after doing something: carries the reports so far (for --json)."""

    def __init__(self, message: str, reports: list[dict[str, Any]]):
        super().__init__(message)
        self.reports = reports


def format_report(report: Mapping[str, Any]) -> str:
    if report.get("mode") == "swarm":
        return swarming.format_report(dict(report))
    if report.get("dry_run"):
        return (f"{report['host']}: {report['image']} would pull {report['predicted_layers']}/{report['total_layers']} layers, "
                f"{human_bytes(report['predicted_bytes'])} of {human_bytes(report['total_bytes'])} ({report['store']} store"
                + (f", {report['platform']})" if report.get("platform") else ")"))
    lines = [
        f"host            {report['host']} ({report['store']} image store" + (f", {report['platform']})" if report.get("platform") else ")"),
        f"image           {report['image']}",
        f"digest          {report['digest']}" + (f" (index {report['index_digest']})" if report.get("index_digest") else ""),
        f"previous        {report['previous'] or 'none'}",
        f"layers pulled   {report['predicted_layers']}/{report['total_layers']} predicted, {report.get('measured_layers', 0)} measured (engine's pull progress)",
        f"bytes pulled    {human_bytes(report['predicted_bytes'])} of {human_bytes(report['total_bytes'])} predicted, "
        f"{human_bytes(report.get('measured_bytes', 0))} measured (engine's pull progress, without the config)",
        f"pull time       {report['pull_seconds']:.2f}s",
        f"healthy after   {report['seconds_to_healthy']}s (slot {report['slot']})" if report["healthy"] or report.get("web_live")
        else f"healthy         no ({report['error']})",
    ]
    if report.get("switch_seconds") is not None:
        lines.append(f"switch          {report['switch_seconds']:.2f}s")
    if report.get("monitor"):
        watch = report["monitor"]
        lines.append(f"watch window    {watch['seconds']:.0f}s: {watch['requests']} requests, {watch['errors']} failed"
                     + (f" ({watch['note']})" if watch.get("note") else "")
                     + (" (switched back)" if watch.get("switched_back") else ""))
    if report.get("drain_seconds") is not None:
        lines.append(f"drain           {report['drain_seconds']:.2f}s")
    if report.get("proxy_restarts"):
        lines.append("proxy           restarted during the deploy (its restart policy brought it back)")
    if report.get("cron"):
        lines.append(f"cron            {report['cron']}")
    if report["rolled_back"] and not report["healthy"]:
        lines.append(f"still serving   {report['previous']}")
    lines.append(f"deploy time     {report.get('seconds', 0):.1f}s")
    return "\n".join(lines)


def rollback(section: Mapping[str, Any], hosts: Iterable[str] = (), to: str | None = None) -> list[dict[str, Any]]:
    config = load_config(section)
    if config.mode == "swarm" and to is not None:
        return deploy(section, hosts, to)

    def rollback_one(target: Target) -> DeployReport:
        login(config, target.docker)  # a release whose image the host lost is pulled again
        return deploying.rollback(target, say, to)

    with login_scope(config):
        if config.mode == "swarm":
            return [swarm_run(config, hosts_from(config, hosts), lambda manager: swarming.rollback(manager, config, say))]
        return each_host(config, hosts_from(config, hosts), rollback_one, "rollback")


def status(section: Mapping[str, Any], hosts: Iterable[str] = ()) -> list[dict[str, Any]]:
    config = load_config(section)
    if config.mode == "swarm":
        return [swarm_run(config, hosts_from(config, hosts), lambda manager: swarming.status(manager, config))]
    registry = registry_for(config)
    return each_host(config, hosts_from(config, hosts),
                     lambda target: with_freshness(target, {**deploying.status(target), "releases": retention.usage(target)}, registry),
                     "status")


def with_freshness(target: Target, entry: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The status entry plus the running image's base digest, deps age and newer deps image (delivery/supply/refresh.py)."""
    running = entry.get("running")
    if running:
        try:
            image = target.docker.image.inspect(running["image"])
            entry["deps"] = refreshing.deps_freshness(image.config.labels or {}, image.config.env or [], registry)
        except (DeliveryError, DockerException) as exc:  # status still answers with the registry down
            entry["deps"] = {"error": str(exc).splitlines()[0]}
    return entry


def swarm_run(config: DeployConfig, hosts: list[Host], action: Callable[[Host], Any]) -> dict[str, Any]:
    """deploy.mode swarm: run `action` through the one manager; a report that failed becomes DeployFailed."""
    if len(hosts) != 1:
        raise DeliveryError(f"deploy.mode is swarm: give one manager with --host (or deploy.hosts), not {len(hosts)} hosts")
    require_cli()
    result = action(hosts[0])
    if isinstance(result, swarming.SwarmReport):
        report = result.as_dict()
        if result.error:
            raise DeployFailed(result.error, [report])
        return report
    return result


def format_status(entry: Mapping[str, Any]) -> str:
    if entry.get("mode") == "swarm":
        return swarming.format_status(dict(entry))
    running = entry["running"]
    lines = [f"{entry['host']}  engine {entry['engine']}, {entry['image_store']} image store"
             + (f", {entry['platform']}" if entry.get("platform") else "")]
    if running:
        where = f"slot {entry['live_slot']}" if entry.get("live_slot") else "single container"
        lines.append(f"  live      {running['tag']}  {running['state']}/{running['health']}  {where}, since {running['started_at']}")
        lines.append(f"  digest    {running['digest']}")
    else:
        lines.append("  live      nothing (first deploy: `invoke deploy`)")
    for slot, info in (entry.get("slots") or {}).items():
        if info and slot != entry.get("live_slot"):
            lines.append(f"  {slot:<9} {info['tag']}  {info['state']}/{info['health']}  (not live: left by an interrupted deploy)")
    cron = entry.get("cron")
    lines.append(f"  cron      {cron['tag']}  {cron['state']}/{cron['health']}" if cron else "  cron      not running")
    proxy = entry.get("proxy")
    lines.append(f"  proxy     {proxy['image']}  {proxy['state']}  since {proxy['started_at']}" if proxy else "  proxy     not running")
    releases = entry.get("releases")
    if releases:
        lines.append(f"  releases  {releases['count']} on the host (keep_releases {releases['keep_releases']}), "
                     f"{human_bytes(releases['bytes'])} of images")
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


def unlock(section: Mapping[str, Any], hosts: Iterable[str] = (), force: bool = False) -> list[str]:
    """Remove each host's stale deploy lock; a live holder's, or one that cannot be checked from here, only with `force`."""
    config = load_config(section)
    done: list[str] = []
    for host in hosts_from(config, hosts):
        docker = connect(host)
        check_engine(docker, host)
        try:
            done.append(unlock_lock(docker, config.compose_project, host.label, host.url or host.context or "local", force))
        except DeliveryError as exc:
            raise DeliveryError(f"{exc}" + (f" (done before it: {'; '.join(done)})" if done else "")) from exc
    return done


# -- day-2 operations ----------------------------------------------------------------------------
def prune(section: Mapping[str, Any], hosts: Iterable[str] = (), keep: str | int | None = None,
          dry_run: bool = False) -> list[dict[str, Any]]:
    """Keep the newest releases on each host (--keep, else deploy.keep_releases); prune the others."""
    config = load_config(section)
    count = config.keep_releases if keep is None else keep_count("--keep", keep)
    targets = hosts_from(config, hosts)
    return each_host(config, targets, lambda target: retention.prune(target, count, say, dry_run).as_dict(), "prune")


def format_prune(report: Mapping[str, Any]) -> str:
    why = report["why_kept"]
    kept = ", ".join(f"{tag} ({why[tag]})" if tag in why else tag for tag in report["kept"]) or "none"
    lines = [f"{report['host']}: keep {report['keep']}", f"  kept      {kept}",
             f"  pruned    {', '.join(report['pruned']) or 'nothing'}"]
    predicted = f"{human_bytes(report['predicted_freed_bytes'])} predicted"
    if report["dry_run"]:
        lines.append(f"  would free {predicted} (dry run: nothing removed)")
    elif report["freed_bytes"] is None:
        lines.append("  freed     0 B (nothing to remove)")
    else:
        lines.append(f"  freed     {human_bytes(report['freed_bytes'])} measured (docker system df before/after), {predicted}")
    lines += [f"  not removed: {error}" for error in report["errors"]]
    return "\n".join(lines)


def logs(section: Mapping[str, Any], hosts: Iterable[str] = (), service: str | None = None, since: str | None = None,
         tail: str | int | None = None, follow: bool = False) -> None:
    """Print the project's container logs of each host (prefixed with the host's name when there are several)."""
    config = load_config(section)
    request = container_logs.logs_request(compose_services(service), since, tail, follow)
    targets = hosts_from(config, hosts)
    with contextlib.ExitStack() as open_targets:  # each compose command reads its target's env file
        commands = []
        for host in targets:
            target = open_targets.enter_context(opened(host, config))
            compose_cmd = [str(part) for part in target.compose().client_config.docker_compose_cmd]
            commands.append((host.label, container_logs.logs_argv(compose_cmd, request)))
        container_logs.show_logs(commands, prefix=len(commands) > 1)


def run_job(section: Mapping[str, Any], hosts: Iterable[str] = (), name: str = "") -> int:
    """Run cron job `name` now on each host in turn; the first non-zero exit code stops (and is returned)."""
    config = load_config(section)
    for host in hosts_from(config, hosts):
        with opened(host, config) as target:
            code = jobs.run_job(target, name, say)
        if code != 0:
            say(f"{host.label}: job {name} exited with code {code}")
            return code
    return 0


def checkout_jobs() -> str:
    """The jobs of this checkout's crontab with their schedules (for `invoke --help run-job`)."""
    try:
        found = jobs.crontab_jobs((ROOT / "crontab").read_text())
    except OSError:
        return ""
    return ", ".join(f"{job.name} ({job.schedule})" for job in found)


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

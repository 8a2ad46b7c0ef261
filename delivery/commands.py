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

from delivery import build, tags
from delivery.builder import BuilderInfo, detect
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


def builder() -> tuple[Any, BuilderInfo]:
    """The local engine's CLI and its current buildx builder, checked before any work: where images are built.

    A builder that cannot build these images stops the task here, with the fix
    (delivery/builder.py); the build path it takes is announced when a build starts.
    """
    local = parse_host("local")
    docker = connect(local)
    return docker, detect(docker, local)


def doctor(section: Mapping[str, Any]) -> dict[str, Any]:
    """Which builder the build tasks would use and which path they would take; fails, naming the fix, when none."""
    config = load_config(section)
    local = parse_host("local")
    info = detect(connect(local), local)
    return {"builder": info.as_dict(), "registry": config.registry}


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
def build_deps(section: Mapping[str, Any], force: bool = False, use_cache: bool = True) -> dict[str, Any]:
    config, project = settings(section)
    docker, info = builder()  # an unusable builder: say so before anything else
    registry = ensure_registry(config)
    plan = build.deps_plan(project, config)
    tag = plan.image.rsplit(":", 1)[1]
    if registry.has_tag(tags.DEPS_REPOSITORY, tag) and not force:
        say(f"{plan.image} is already in the registry: nothing to build (--force rebuilds it)")
        digest = registry.manifest(tags.DEPS_REPOSITORY, tag).digest
        return {"image": plan.image, "digest": digest, "built": False}
    login(config, docker)
    say(info.summary())
    say(f"building deps image {plan.image}")
    digest = build.run_build(docker, registry, plan, info.path, say, use_cache=use_cache)
    return {"image": plan.image, "digest": digest, "built": True}


def build_app(section: Mapping[str, Any], use_cache: bool = True) -> dict[str, Any]:
    config, project = settings(section)
    docker, info = builder()  # missing CLI, plugin, engine or a usable builder: say so before anything else
    login(config, docker)
    registry = ensure_registry(config)
    deps_image = build.deps_ref(project, config)
    if not registry.has_tag(tags.DEPS_REPOSITORY, deps_image.rsplit(":", 1)[1]):
        raise DeliveryError(f"{deps_image} is not in the registry (the deps inputs changed, or the registry is new): run `invoke build-deps` first")
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
    deps = build_deps(section)
    app = build_app(section)
    return {"deps": deps, "app": app}


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
    return each_host(config, hosts_from(config, hosts), deploying.status, "status")


def format_status(entry: Mapping[str, Any]) -> str:
    running = entry["running"]
    lines = [f"{entry['host']}  engine {entry['engine']}, {entry['image_store']} image store"]
    if running:
        lines.append(f"  running   {running['tag']}  {running['state']}/{running['health']}  since {running['started_at']}")
        lines.append(f"  digest    {running['digest']}")
    else:
        lines.append("  running   nothing (first deploy: `invoke deploy`)")
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

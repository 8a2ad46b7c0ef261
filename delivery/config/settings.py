"""The `deploy` configuration section, validated once into a typed DeployConfig (the validators: validation.py)."""

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from delivery.config import validation as check
from delivery.config.platforms import DEFAULT as DEFAULT_PLATFORMS
from delivery.config.platforms import parse_platforms
from delivery.errors import DeliveryError


@dataclass(frozen=True)
class DeployConfig:
    """Everything the build, push and deploy tasks need to know, validated."""

    registry: str = "localhost:5000"  # host[:port][/namespace...]: the images are <registry>/production-control[-deps]
    python_image: str | None = None  # None: the Dockerfile's ARG PYTHON_IMAGE default
    ca_bundle: Path | None = None  # CA bundle for TLS-inspecting proxies, passed as a build secret
    pip_index_url_file: Path | None = None  # file holding a private index URL, passed as a build secret
    # The platforms the images are built for, pushed as one index per tag (delivery/config/platforms.py);
    # linux/amd64 alone skips the emulated arm64 build.
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    hosts: tuple[str, ...] = ("local",)
    health_timeout: float = 90.0
    pull_timeout: float = 600.0
    proxy_image: str | None = None  # None: docker-compose.yml's official haproxy image
    drain_timeout: float = 30.0  # how long the old web container gets to finish requests in flight
    monitor: float = 10.0  # the watch window after a switch (0: none)
    max_error_rate: float = 0.02  # failed share of the new release's requests that switches back
    # Requests the new release must serve in the watch window, or it is switched back; 0: a window with
    # no traffic passes on the proxy's health checks of the new slot alone (and the report says so).
    watch_min_requests: int = 0
    compose_project: str = "production-control"
    http_port: int = 8000
    site_name: str = "production"
    registry_user: str | None = None
    registry_password_env: str = "REGISTRY_PASSWORD"  # NAME of the env var with the password
    keep_releases: int = 5  # releases kept on each host after a healthy deploy (retention)
    lock_wait: float = 0.0  # seconds a deploy waits for another one's lock; 0: fail at once
    audit_osv_url: str | None = None  # an OSV-compatible API for the audit; None: PyPI's vulnerability data
    # Swarm (docs/cluster.md): deploy a stack through a manager (--host / hosts) instead of host by host.
    mode: str = "compose"  # "compose" | "swarm"
    nodes: tuple[str, ...] = ()  # the swarm nodes' engines (docker hosts), for per-node predictions and measurements
    pre_pull: bool = False  # swarm: pull on every node before the update, so the rolling window holds no download
    replicas: int = 3  # swarm: web tasks
    # Five cron fields for every job (CRON_SCHEDULE in the containers); None: the crontab's own.
    cron_schedule: str | None = None


def _defaults() -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for field in fields(DeployConfig):
        value = field.default
        # invoke casts an INVOKE_DEPLOY_* variable to the default's type: hosts is
        # therefore a comma-separated string, which env vars can express.
        plain[field.name] = ",".join(value) if isinstance(value, tuple) else value
    return plain


DEFAULTS: dict[str, Any] = _defaults()
# Settings that no longer exist, and what to do instead (one line at load, not "unknown setting").
REMOVED: dict[str, str] = {
    "python_image_source": "the base image is always read from its registry (an offline base: push it to one, "
    "e.g. the test bed's localhost:5000/python-base:bookworm-amd64), then unset it",
}  # for Collection.configure({"deploy": DEFAULTS})


def load_config(section: Mapping[str, Any]) -> DeployConfig:
    """Validate the invoke `deploy` config section (a mapping or invoke DataProxy) into a DeployConfig.

    Missing keys and None values take the defaults.
    """
    raw = dict(section)
    valid = sorted(DEFAULTS)
    for key in raw:
        if key in REMOVED:
            raise DeliveryError(f"deploy.{key} was removed: {REMOVED[key]}")
        if key not in DEFAULTS:
            raise DeliveryError(f"unknown deploy setting {key!r}: valid settings are {', '.join(valid)}")
    values = {key: value for key, value in raw.items() if value is not None}
    base = DeployConfig()
    return DeployConfig(
        registry=check.registry(values.get("registry", base.registry)),
        python_image=check.image("python_image", values.get("python_image"), "python:3.12-slim-bookworm"),
        ca_bundle=check.existing_file("ca_bundle", values.get("ca_bundle")),
        pip_index_url_file=check.existing_file("pip_index_url_file", values.get("pip_index_url_file")),
        platforms=parse_platforms(values.get("platforms", base.platforms)),
        hosts=check.hosts(values.get("hosts", base.hosts)),
        health_timeout=check.positive("health_timeout", values.get("health_timeout", base.health_timeout)),
        pull_timeout=check.positive("pull_timeout", values.get("pull_timeout", base.pull_timeout)),
        proxy_image=check.image("proxy_image", values.get("proxy_image"), "haproxy:3.0-bookworm"),
        drain_timeout=check.positive("drain_timeout", values.get("drain_timeout", base.drain_timeout)),
        monitor=check.positive("monitor", values.get("monitor", base.monitor), zero=True),
        max_error_rate=check.fraction("max_error_rate", values.get("max_error_rate", base.max_error_rate)),
        watch_min_requests=check.min_requests(values.get("watch_min_requests", base.watch_min_requests)),
        compose_project=check.compose_project(values.get("compose_project", base.compose_project)),
        http_port=check.port(values.get("http_port", base.http_port)),
        site_name=check.site_name(values.get("site_name", base.site_name)),
        registry_user=check.registry_user(values.get("registry_user")),
        registry_password_env=check.env_name(values.get("registry_password_env", base.registry_password_env)),
        keep_releases=check.keep_count("deploy.keep_releases", values.get("keep_releases", base.keep_releases)),
        lock_wait=check.wait_seconds("deploy.lock_wait", values.get("lock_wait", base.lock_wait)),
        audit_osv_url=check.url("audit_osv_url", values.get("audit_osv_url")),
        mode=check.mode(values.get("mode", base.mode)),
        nodes=check.nodes(values.get("nodes", base.nodes)),
        pre_pull=check.flag("pre_pull", values.get("pre_pull", base.pre_pull)),
        replicas=check.count("replicas", values.get("replicas", base.replicas)),
        cron_schedule=check.cron_schedule(values.get("cron_schedule")),
    )



def check_config_file(path: Path) -> None:
    """Fail with one line when invoke.yaml is not valid YAML (invoke itself would print a traceback)."""
    import yaml  # type: ignore[import-untyped]  # no stubs in the locked dev tools (types-PyYAML)

    if not path.exists():
        return
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "it is not valid YAML"
        raise DeliveryError(f"{path.name} is not valid YAML{where} ({problem}): fix it, or remove it to use the defaults") from exc
    if data is not None and not isinstance(data, dict):
        raise DeliveryError(f"{path.name} must be a mapping with a `deploy:` section, not a {type(data).__name__}")
    if isinstance(data, dict) and data.get("deploy") is not None and not isinstance(data["deploy"], dict):
        raise DeliveryError(f"{path.name}: `deploy` must be a mapping of settings (see the comments in invoke.yaml)")

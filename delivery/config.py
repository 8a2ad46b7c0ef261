"""The `deploy` configuration section, validated once into a typed DeployConfig."""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from delivery.errors import DeliveryError
from delivery.tags import split_image_ref

HOST_FORMS = "use unix:///path, ssh://user@host, tcp://host:port or a docker context name"

_HOSTNAME = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
_PORT = r"[0-9]{1,5}"
_REGISTRY = re.compile(rf"(?P<host>{_HOSTNAME})(?::(?P<port>{_PORT}))?", re.ASCII)
_SSH = re.compile(rf"ssh://(?:[A-Za-z0-9_][A-Za-z0-9_.-]*@)?{_HOSTNAME}(?::(?P<port>{_PORT}))?", re.ASCII)
_TCP = re.compile(rf"tcp://{_HOSTNAME}:(?P<port>{_PORT})", re.ASCII)
_UNIX = re.compile(r"unix://(/[^\x00-\x20\x7f]*[^/\x00-\x20\x7f][^\x00-\x20\x7f]*)", re.ASCII)
_CONTEXT = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.+-]*", re.ASCII)
_COMPOSE_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


@dataclass(frozen=True)
class Host:
    """Where to deploy: the local engine, a docker host URL, or a docker context."""

    kind: str  # "local" | "unix" | "ssh" | "tcp" | "context"
    url: str | None  # docker host URL (DOCKER_HOST) or None
    context: str | None  # docker context name or None

    @property
    def label(self) -> str:
        """A short display name: `local`, the context name, or the URL without its scheme."""
        if self.kind == "local":
            return "local"
        if self.kind == "context":
            return str(self.context)
        return str(self.url).split("://", 1)[1]


def parse_host(value: str) -> Host:
    """Parse one entry of deploy.hosts: `local`, unix:///path, ssh://[user@]host[:port], tcp://host:port or a context."""
    if not isinstance(value, str):
        raise DeliveryError(f"invalid host {value!r}: {HOST_FORMS}")
    if value == "local":
        return Host(kind="local", url=None, context=None)
    for kind, pattern in (("unix", _UNIX), ("ssh", _SSH), ("tcp", _TCP)):
        match = pattern.fullmatch(value)
        if match and _port_ok(match.groupdict().get("port")):
            return Host(kind=kind, url=value, context=None)
    if "://" not in value and _CONTEXT.fullmatch(value):
        return Host(kind="context", url=None, context=value)
    raise DeliveryError(f"invalid host {value!r}: {HOST_FORMS}")


def _port_ok(port: str | None) -> bool:
    return port is None or 1 <= int(port) <= 65535


@dataclass(frozen=True)
class DeployConfig:
    """Everything the build, push and deploy tasks need to know, validated."""

    registry: str = "localhost:5000"
    python_image: str | None = None  # None: the Dockerfile's ARG PYTHON_IMAGE default
    python_image_source: str = "registry"  # where its digest is read: "registry", or "local" (an offline base)
    ca_bundle: Path | None = None  # CA bundle for TLS-inspecting proxies, passed as a build secret
    pip_index_url_file: Path | None = None  # file holding a private index URL, passed as a build secret
    hosts: tuple[str, ...] = ("local",)
    health_timeout: float = 90.0
    pull_timeout: float = 600.0
    compose_project: str = "production-control"
    http_port: int = 8000
    site_name: str = "production"
    registry_user: str | None = None
    registry_password_env: str = "REGISTRY_PASSWORD"  # NAME of the env var with the password
    audit_osv_url: str | None = None  # an OSV-compatible API for the audit; None: PyPI's vulnerability data

    @property
    def host_targets(self) -> tuple[Host, ...]:
        """The hosts, parsed."""
        return tuple(parse_host(host) for host in self.hosts)


def _defaults() -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for field in fields(DeployConfig):
        value = field.default
        # invoke casts an INVOKE_DEPLOY_* variable to the default's type: hosts is
        # therefore a comma-separated string, which env vars can express.
        plain[field.name] = ",".join(value) if isinstance(value, tuple) else value
    return plain


DEFAULTS: dict[str, Any] = _defaults()  # for Collection.configure({"deploy": DEFAULTS})


def load_config(section: Mapping[str, Any]) -> DeployConfig:
    """Validate the invoke `deploy` config section (a mapping or invoke DataProxy) into a DeployConfig.

    Missing keys and None values take the defaults.
    """
    raw = dict(section)
    valid = sorted(DEFAULTS)
    for key in raw:
        if key not in DEFAULTS:
            raise DeliveryError(f"unknown deploy setting {key!r}: valid settings are {', '.join(valid)}")
    values = {key: value for key, value in raw.items() if value is not None}
    base = DeployConfig()
    return DeployConfig(
        registry=_registry(values.get("registry", base.registry)),
        python_image=_python_image(values.get("python_image")),
        python_image_source=_python_image_source(values.get("python_image_source", base.python_image_source)),
        ca_bundle=_existing_file("ca_bundle", values.get("ca_bundle")),
        pip_index_url_file=_existing_file("pip_index_url_file", values.get("pip_index_url_file")),
        hosts=_hosts(values.get("hosts", base.hosts)),
        health_timeout=_positive("health_timeout", values.get("health_timeout", base.health_timeout)),
        pull_timeout=_positive("pull_timeout", values.get("pull_timeout", base.pull_timeout)),
        compose_project=_compose_project(values.get("compose_project", base.compose_project)),
        http_port=_port(values.get("http_port", base.http_port)),
        site_name=_site_name(values.get("site_name", base.site_name)),
        registry_user=_registry_user(values.get("registry_user")),
        registry_password_env=_env_name(values.get("registry_password_env", base.registry_password_env)),
        audit_osv_url=_url("audit_osv_url", values.get("audit_osv_url")),
    )


def _registry(value: Any) -> str:
    match = _REGISTRY.fullmatch(value) if isinstance(value, str) else None
    if match is None or not _port_ok(match.group("port")):
        raise DeliveryError(
            f"invalid deploy.registry {value!r}: use host[:port] without scheme or path, e.g. localhost:5000"
        )
    return value


def _python_image(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str) or not value:
            raise DeliveryError("empty")
        split_image_ref(value)
    except DeliveryError:
        raise DeliveryError(
            f"invalid deploy.python_image {value!r}: use an image reference like python:3.12-slim-bookworm"
        ) from None
    return value


def _python_image_source(value: Any) -> str:
    if value not in ("registry", "local"):
        raise DeliveryError(
            f"invalid deploy.python_image_source {value!r}: use registry (digest from the registry) "
            "or local (an image only in the builder engine, tracked by its image ID)"
        )
    return value


def _existing_file(key: str, value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, Path)) or not str(value):
        raise DeliveryError(f"invalid deploy.{key} {value!r}: give the path of a file")
    path = Path(value)
    try:
        path = path.expanduser().absolute()
        is_file = path.is_file()
    except (OSError, RuntimeError):  # a name too long for the file system; ~user of an unknown user
        is_file = False
    if not is_file:
        raise DeliveryError(f"deploy.{key} file {str(path)!r} does not exist: fix the path or unset deploy.{key}")
    return path


def _hosts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise DeliveryError(f"invalid deploy.hosts {value!r}: give a list of hosts, e.g. [\"local\"]")
    if not items:
        raise DeliveryError("deploy.hosts is empty: list at least one host, e.g. [\"local\"]")
    seen: set[str] = set()
    for item in items:
        parse_host(item)
        if item in seen:
            raise DeliveryError(f"deploy.hosts lists {item!r} twice: list each host once")
        seen.add(item)
    return tuple(items)


def _positive(key: str, value: Any) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise DeliveryError(f"invalid deploy.{key} {value!r}: use a positive number of seconds, e.g. 90")
    return number


def _port(value: Any) -> int:
    port: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        port = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        port = int(value)
    if port is None or not 1 <= port <= 65535:
        raise DeliveryError(f"invalid deploy.http_port {value!r}: use a port number from 1 to 65535")
    return port


def _compose_project(value: Any) -> str:
    if not isinstance(value, str) or not _COMPOSE_PROJECT.fullmatch(value):
        raise DeliveryError(
            f"invalid deploy.compose_project {value!r}: use lower-case letters, digits, - and _, e.g. production-control"
        )
    return value


def _site_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise DeliveryError(f"invalid deploy.site_name {value!r}: use a non-empty one-line name, e.g. production")
    return value


def _registry_user(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or not value.isprintable():
        raise DeliveryError(f"invalid deploy.registry_user {value!r}: use a user name or leave it unset")
    return value


def _env_name(value: Any) -> str:
    # Never echo the value: someone may have put the password itself here.
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise DeliveryError(
            "invalid deploy.registry_password_env: give the NAME of the environment variable"
            " holding the password (e.g. REGISTRY_PASSWORD), never the password itself"
        )
    return value


def _url(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise DeliveryError(f"invalid deploy.{key} {value!r}: use an http(s) URL, e.g. https://api.osv.dev/v1/query")
    return value


def check_config_file(path: Path) -> None:
    """Fail with one line when invoke.yaml is not valid YAML (invoke itself would print a traceback)."""
    import yaml

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

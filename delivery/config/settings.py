"""The `deploy` configuration section, validated once into a typed DeployConfig."""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from delivery.config.platforms import DEFAULT as DEFAULT_PLATFORMS
from delivery.config.platforms import parse_platforms
from delivery.errors import DeliveryError
from delivery.images.tags import split_image_ref

HOST_FORMS = "use unix:///path, ssh://user@host, tcp://host:port or a docker context name"

_HOSTNAME = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
_PORT = r"[0-9]{1,5}"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"  # distribution/reference
_REGISTRY = re.compile(rf"(?P<host>{_HOSTNAME})(?::(?P<port>{_PORT}))?(?:/{_PATH_COMPONENT})*", re.ASCII)
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
        registry=_registry(values.get("registry", base.registry)),
        python_image=_image("python_image", values.get("python_image"), "python:3.12-slim-bookworm"),
        ca_bundle=_existing_file("ca_bundle", values.get("ca_bundle")),
        pip_index_url_file=_existing_file("pip_index_url_file", values.get("pip_index_url_file")),
        platforms=parse_platforms(values.get("platforms", base.platforms)),
        hosts=_hosts(values.get("hosts", base.hosts)),
        health_timeout=_positive("health_timeout", values.get("health_timeout", base.health_timeout)),
        pull_timeout=_positive("pull_timeout", values.get("pull_timeout", base.pull_timeout)),
        proxy_image=_image("proxy_image", values.get("proxy_image"), "haproxy:3.0-bookworm"),
        drain_timeout=_positive("drain_timeout", values.get("drain_timeout", base.drain_timeout)),
        monitor=_positive("monitor", values.get("monitor", base.monitor), zero=True),
        max_error_rate=_fraction("max_error_rate", values.get("max_error_rate", base.max_error_rate)),
        watch_min_requests=_min_requests(values.get("watch_min_requests", base.watch_min_requests)),
        compose_project=_compose_project(values.get("compose_project", base.compose_project)),
        http_port=_port(values.get("http_port", base.http_port)),
        site_name=_site_name(values.get("site_name", base.site_name)),
        registry_user=_registry_user(values.get("registry_user")),
        registry_password_env=_env_name(values.get("registry_password_env", base.registry_password_env)),
        keep_releases=keep_count("deploy.keep_releases", values.get("keep_releases", base.keep_releases)),
        lock_wait=wait_seconds("deploy.lock_wait", values.get("lock_wait", base.lock_wait)),
        audit_osv_url=_url("audit_osv_url", values.get("audit_osv_url")),
        mode=_mode(values.get("mode", base.mode)),
        nodes=_nodes(values.get("nodes", base.nodes)),
        pre_pull=_flag("pre_pull", values.get("pre_pull", base.pre_pull)),
        replicas=_count("replicas", values.get("replicas", base.replicas)),
        cron_schedule=cron_schedule(values.get("cron_schedule")),
    )


def _mode(value: Any) -> str:
    if value not in ("compose", "swarm"):
        raise DeliveryError(f"invalid deploy.mode {value!r}: use compose (host by host) or swarm (a stack through a manager)")
    return str(value)


def _nodes(value: Any) -> tuple[str, ...]:
    if value in ("", None) or value == ():
        return ()
    return _hosts(value) if isinstance(value, (str, list, tuple)) else _hosts(None)


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise DeliveryError(f"invalid deploy.{key} {value!r}: use true or false")


def _min_requests(value: Any) -> int:
    """deploy.watch_min_requests: a whole number, 0 or more (0: a quiet watch window passes on health checks)."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DeliveryError(f"invalid deploy.watch_min_requests {value!r}: use a whole number of requests, 0 or more "
                            "(0: a window with no traffic passes on health checks), e.g. 20")
    return value


def _count(key: str, value: Any) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
        raise DeliveryError(f"invalid deploy.{key} {value!r}: use a whole number from 1 to 100")
    return value


# The five fields of a cron schedule, as Debian's cron reads them: (name, lowest, highest, names for values).
CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
CRON_FORM = "use five cron fields (minute hour day-of-month month day-of-week), e.g. '*/5 * * * *' or '0 3 * * mon-fri'"
_CRON_ITEM = re.compile(r"(?P<range>\*|(?P<low>[0-9]{1,2}|[a-z]{3})(?:-(?P<high>[0-9]{1,2}|[a-z]{3}))?)(?:/(?P<step>[0-9]{1,2}))?", re.ASCII)


def cron_schedule(value: Any) -> str | None:
    """Validate CRON_SCHEDULE (deploy.cron_schedule) field by field: five fields of numbers, names, `*`, ranges,
    lists and steps, each within its field's bounds, nothing else (a newline would add a crontab line run as root).
    The schedule with single spaces; None for no schedule (the crontab's own)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DeliveryError(f"invalid deploy.cron_schedule {value!r}: {CRON_FORM}")
    if not value.isprintable():
        raise DeliveryError(f"invalid deploy.cron_schedule {value!r}: it holds a control character (a newline or tab?): {CRON_FORM}")
    fields_ = value.split()
    if len(fields_) != len(CRON_FIELDS):
        raise DeliveryError(f"invalid deploy.cron_schedule {value!r}: it has {len(fields_)} fields, not 5: {CRON_FORM}")
    for text, (name, lowest, highest, names) in zip(fields_, CRON_FIELDS):
        for item in text.lower().split(","):
            if not _cron_item_ok(item, lowest, highest, names):
                raise DeliveryError(f"invalid deploy.cron_schedule {value!r}: the {name} field {text!r} is not "
                                    f"*, a number from {lowest} to {highest}"
                                    + (f" or a name ({names[0]}-{names[-1]})" if names else "")
                                    + f", a range, a list or a /step: {CRON_FORM}")
    return " ".join(fields_)


def _cron_item_ok(item: str, lowest: int, highest: int, names: tuple[str, ...]) -> bool:
    match = _CRON_ITEM.fullmatch(item)
    if match is None:
        return False
    def number(text: str | None) -> int | None:
        if text is None:
            return None
        if text.isdigit():
            return int(text)
        return names.index(text) + lowest if text in names else -1
    low, high, step = number(match.group("low")), number(match.group("high")), match.group("step")
    if any(n is not None and not lowest <= n <= highest for n in (low, high)):
        return False
    if low is not None and high is not None and high < low:
        return False
    return step is None or int(step) >= 1


REGISTRY_FORM = "use host[:port][/namespace], e.g. localhost:5000, ghcr.io/acme or docker.io/acme"


def _registry(value: Any) -> str:
    if isinstance(value, str) and "://" in value:
        raise DeliveryError(f"invalid deploy.registry {value!r}: drop the scheme ({value.split('://')[0]}://): {REGISTRY_FORM}")
    match = _REGISTRY.fullmatch(value.rstrip("/")) if isinstance(value, str) else None
    if match is None or not _port_ok(match.group("port")):
        raise DeliveryError(f"invalid deploy.registry {value!r}: {REGISTRY_FORM}")
    return value.rstrip("/")


def _image(key: str, value: Any, example: str) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str) or not value:
            raise DeliveryError("empty")
        split_image_ref(value)
    except DeliveryError:
        raise DeliveryError(f"invalid deploy.{key} {value!r}: use an image reference like {example}") from None
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


def _number(value: Any) -> float | None:
    """A number given as a number or a string (as INVOKE_DEPLOY_* variables are); None otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _positive(key: str, value: Any, zero: bool = False) -> float:
    number = _number(value)
    if number is None or not math.isfinite(number) or number < 0 or (number == 0 and not zero):
        kind = "a number of seconds, 0 or more" if zero else "a positive number of seconds"
        raise DeliveryError(f"invalid deploy.{key} {value!r}: use {kind}, e.g. 90")
    return number


def _fraction(key: str, value: Any) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not 0 <= number < 1:
        raise DeliveryError(f"invalid deploy.{key} {value!r}: use a fraction from 0 to below 1, e.g. 0.02 for 2 %")
    return number


def keep_count(name: str, value: Any) -> int:
    """How many releases to keep (deploy.keep_releases, prune --keep): a whole number of at least 1."""
    count: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        count = int(value.strip())
    if count is None or count < 1:
        raise DeliveryError(
            f"invalid {name} {value!r}: keep at least 1 release (the running one), e.g. 5"
        )
    return count


def wait_seconds(name: str, value: Any) -> float:
    """Seconds to wait for the deploy lock (deploy.lock_wait, deploy --lock-wait): 0 or more."""
    number = _number(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise DeliveryError(f"invalid {name} {value!r}: use a number of seconds, 0 or more (0: fail at once), e.g. 300")
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

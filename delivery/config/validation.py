"""The validators of the `deploy` settings: each turns one raw value into its typed value, or one line saying what to use."""

import math
import re
from pathlib import Path
from typing import Any

from delivery.config.hosts import HOSTNAME, PORT, parse_host, port_ok
from delivery.config.references import split_image_ref
from delivery.errors import DeliveryError

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"  # distribution/reference
_REGISTRY = re.compile(rf"(?P<host>{HOSTNAME})(?::(?P<port>{PORT}))?(?:/{_PATH_COMPONENT})*", re.ASCII)
_COMPOSE_PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)


def mode(value: Any) -> str:
    if value not in ("compose", "swarm"):
        raise DeliveryError(f"invalid deploy.mode {value!r}: use compose (host by host) or swarm (a stack through a manager)")
    return str(value)


def nodes(value: Any) -> tuple[str, ...]:
    if value in ("", None) or value == ():
        return ()
    return hosts(value) if isinstance(value, (str, list, tuple)) else hosts(None)


def flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise DeliveryError(f"invalid deploy.{key} {value!r}: use true or false")


def min_requests(value: Any) -> int:
    """deploy.watch_min_requests: a whole number, 0 or more (0: a quiet watch window passes on health checks)."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DeliveryError(f"invalid deploy.watch_min_requests {value!r}: use a whole number of requests, 0 or more "
                            "(0: a window with no traffic passes on health checks), e.g. 20")
    return value


def count(key: str, value: Any) -> int:
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
    for text, (name, lowest, highest, names) in zip(fields_, CRON_FIELDS, strict=True):
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


def registry(value: Any) -> str:
    if isinstance(value, str) and "://" in value:
        raise DeliveryError(f"invalid deploy.registry {value!r}: drop the scheme ({value.split('://')[0]}://): {REGISTRY_FORM}")
    text = value.rstrip("/") if isinstance(value, str) else None
    match = _REGISTRY.fullmatch(text) if text is not None else None
    if text is None or match is None or not port_ok(match.group("port")):
        raise DeliveryError(f"invalid deploy.registry {value!r}: {REGISTRY_FORM}")
    return text


def image(key: str, value: Any, example: str) -> str | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str) or not value:
            raise DeliveryError("empty")
        split_image_ref(value)
    except DeliveryError:
        raise DeliveryError(f"invalid deploy.{key} {value!r}: use an image reference like {example}") from None
    return value


def existing_file(key: str, value: Any) -> Path | None:
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


def hosts(value: Any) -> tuple[str, ...]:
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


def positive(key: str, value: Any, zero: bool = False) -> float:
    number = _number(value)
    if number is None or not math.isfinite(number) or number < 0 or (number == 0 and not zero):
        kind = "a number of seconds, 0 or more" if zero else "a positive number of seconds"
        raise DeliveryError(f"invalid deploy.{key} {value!r}: use {kind}, e.g. 90")
    return number


def fraction(key: str, value: Any) -> float:
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


def port(value: Any) -> int:
    port: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        port = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        port = int(value)
    if port is None or not 1 <= port <= 65535:
        raise DeliveryError(f"invalid deploy.http_port {value!r}: use a port number from 1 to 65535")
    return port


def compose_project(value: Any) -> str:
    if not isinstance(value, str) or not _COMPOSE_PROJECT.fullmatch(value):
        raise DeliveryError(
            f"invalid deploy.compose_project {value!r}: use lower-case letters, digits, - and _, e.g. production-control"
        )
    return value


def site_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise DeliveryError(f"invalid deploy.site_name {value!r}: use a non-empty one-line name, e.g. production")
    return value


def registry_user(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or not value.isprintable():
        raise DeliveryError(f"invalid deploy.registry_user {value!r}: use a user name or leave it unset")
    return value


def env_name(value: Any) -> str:
    # Never echo the value: someone may have put the password itself here.
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise DeliveryError(
            "invalid deploy.registry_password_env: give the NAME of the environment variable"
            " holding the password (e.g. REGISTRY_PASSWORD), never the password itself"
        )
    return value


def url(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise DeliveryError(f"invalid deploy.{key} {value!r}: use an http(s) URL, e.g. https://api.osv.dev/v1/query")
    return value


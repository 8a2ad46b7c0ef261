"""Where to deploy: one entry of deploy.hosts, parsed into a Host (pure)."""

import re
from dataclasses import dataclass

from delivery.errors import DeliveryError

HOST_FORMS = "use unix:///path, ssh://user@host, tcp://host:port or a docker context name"

HOSTNAME = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])"
PORT = r"[0-9]{1,5}"
_SSH = re.compile(rf"ssh://(?:[A-Za-z0-9_][A-Za-z0-9_.-]*@)?{HOSTNAME}(?::(?P<port>{PORT}))?", re.ASCII)
_TCP = re.compile(rf"tcp://{HOSTNAME}:(?P<port>{PORT})", re.ASCII)
_UNIX = re.compile(r"unix://(/[^\x00-\x20\x7f]*[^/\x00-\x20\x7f][^\x00-\x20\x7f]*)", re.ASCII)
_CONTEXT = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.+-]*", re.ASCII)


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
        if match and port_ok(match.groupdict().get("port")):
            return Host(kind=kind, url=value, context=None)
    if "://" not in value and _CONTEXT.fullmatch(value):
        return Host(kind="context", url=None, context=value)
    raise DeliveryError(f"invalid host {value!r}: {HOST_FORMS}")


def port_ok(port: str | None) -> bool:
    return port is None or 1 <= int(port) <= 65535


"""Host bridges and network namespaces of the test bed's engines (`ip`, `iptables`; needs root).

Each engine that runs at the same time as others gets a bridge (and subnet) of its own. The
swarm's nodes each live in a network namespace, joined to one bridge by a veth pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dockerbed import processes


def exists(bridge: str) -> bool:
    return processes.run("ip", "link", "show", bridge).returncode == 0


def ensure(bridge: str, cidr: str) -> bool:
    """The bridge, with address `cidr` (e.g. 10.213.7.1/24), up; True when it was created here."""
    created = not exists(bridge)
    if created:
        processes.check("ip", "link", "add", bridge, "type", "bridge")
        processes.check("ip", "addr", "add", cidr, "dev", bridge)
    processes.check("ip", "link", "set", bridge, "up")
    return created


def delete(bridge: str) -> None:
    processes.run("ip", "link", "delete", bridge)


def forward_rule(bridge: str) -> list[str]:
    """Pure: the DOCKER-USER rule letting traffic between a bridge's ports through
    (the builder engine sets the FORWARD policy to DROP)."""
    return ["DOCKER-USER", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]


def allow_forwarding(bridge: str) -> None:
    if processes.run("iptables", "-C", *forward_rule(bridge)).returncode != 0:
        processes.check("iptables", "-I", *forward_rule(bridge))


def disallow_forwarding(bridge: str) -> None:
    processes.run("iptables", "-D", *forward_rule(bridge))


@dataclass(frozen=True)
class Namespace:
    """A network namespace on a bridge: veth `veth` on the host side, eth0 with `address` inside."""

    name: str
    veth: str
    address: str  # e.g. 10.213.30.11/24
    gateway: str  # the bridge's address

    @property
    def ip(self) -> str:
        return self.address.split("/", 1)[0]


def ensure_namespace(namespace: Namespace, bridge: str) -> None:
    """The namespace, its veth pair on `bridge`, eth0 and lo up, a default route via the bridge."""
    if not Path(f"/run/netns/{namespace.name}").exists():
        processes.check("ip", "netns", "add", namespace.name)
    if exists(namespace.veth):
        return
    ns = namespace.name
    processes.check("ip", "link", "add", namespace.veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    processes.check("ip", "link", "set", namespace.veth, "master", bridge, "up")
    processes.check("ip", "-n", ns, "addr", "add", namespace.address, "dev", "eth0")
    processes.check("ip", "-n", ns, "link", "set", "eth0", "up")
    processes.check("ip", "-n", ns, "link", "set", "lo", "up")
    processes.check("ip", "-n", ns, "route", "add", "default", "via", namespace.gateway)


def delete_namespace(namespace: Namespace) -> None:
    processes.run("ip", "netns", "delete", namespace.name)
    processes.run("ip", "link", "delete", namespace.veth)

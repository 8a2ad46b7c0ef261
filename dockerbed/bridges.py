"""Host bridges and network namespaces of the test bed's engines (`ip`, `iptables`; needs root).

Each engine that runs at the same time as others gets a bridge (and subnet) of its own. The
swarm's nodes each live in a network namespace, joined to one bridge by a veth pair.
A user-defined network's bridge (br-<id>) outlives a dockerd stopped without removing the
network (throwaway engines of tests); such orphans use up Docker's address pools for every
engine on the host, and `prune_orphans` removes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dockerbed import BedError, processes


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


def delete(bridge: str) -> bool:
    """True when it was deleted here."""
    return processes.run("ip", "link", "delete", bridge).returncode == 0


def names(ip_link_output: str) -> list[str]:
    """Pure: the link names of `ip -o link show` output (lines `6: pctb0: <...` or `7: veth1@if6: <...`)."""
    return [line.split(": ", 2)[1].split("@", 1)[0] for line in ip_link_output.splitlines() if ": " in line]


def orphans(present: Iterable[str], network_ids: Iterable[str], dockerds: int, engines: int) -> list[str]:
    """Pure: the bridges of `present` that Docker made for a network none of the `engines` has.

    Docker names a user-defined network's bridge br-<the first 12 characters of its id>; any
    other bridge (docker0, the test bed's own) is never an orphan. None at all when more
    dockerd run than those `engines`: the others' bridges would look orphaned too.
    """
    if dockerds > engines:
        return []
    owned = {f"br-{network_id[:12]}" for network_id in network_ids}
    return sorted(bridge for bridge in present if bridge.startswith("br-") and bridge not in owned)


def prune_orphans(sockets: Sequence[str]) -> list[str]:
    """Delete the bridges no engine of `sockets` owns (see `orphans`); the ones deleted.
    BedError, nothing deleted, when an engine does not list its networks."""
    dockerds = int(processes.run("pgrep", "-c", "-x", "dockerd").stdout.strip() or 0)
    # Bridges before networks: a network created meanwhile is listed with its bridge's owners.
    present = names(processes.check("ip", "-o", "link", "show", "type", "bridge"))
    network_ids = []
    for socket in sockets:
        listed = processes.run("docker", "-H", f"unix://{socket}", "network", "ls", "-q", "--no-trunc")
        if listed.returncode != 0:
            raise BedError(f"the engine at {socket} does not list its networks, no bridge removed: {listed.stderr.strip()}")
        network_ids += listed.stdout.split()
    return [bridge for bridge in orphans(present, network_ids, dockerds, len(sockets)) if delete(bridge)]


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

"""Keeping a compose host's proxy container current: started when missing, reloaded in place when only its
configuration changed, replaced (image checked first, in a throwaway container) when its image, command or
address did. `ProxySpec.changes` and `needs_replacing` (delivery/deploy/compose/proxy.py) decide, purely.
"""
from __future__ import annotations

from collections.abc import Mapping

from python_on_whales import Container
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.deploy.compose.proxy import Proxy, ProxySpec, ServerStats, drain_command, needs_replacing, switch_command
from delivery.docker.engine import docker_errors, last_line
from delivery.errors import DeliveryError
from delivery.hosts.services import PROXY_SERVICE, other
from delivery.hosts.site import ReadServers, Site
from delivery.hosts.target import Target
from delivery.reporting import Reporter

Tags = dict[str, str | None]  # what the env file names for blue, green and cron


def read_servers(target: Target) -> ReadServers:
    """How the site survey (delivery/hosts/site.py) reads the proxy's servers on this host."""
    def servers(container: str | None) -> Mapping[str, ServerStats]:
        return Proxy(target.docker, container=container, patience=2).stats()
    return servers


def ensure_proxy(target: Target, site: Site, tags_: Tags, reporter: Reporter, proxy: Proxy) -> None:
    """Start the proxy when it is not running (first deploy, or after it was removed); keep a running
    one current: a changed configuration is reloaded in place (no connection dropped), a changed image
    or address replaces the container. `proxy` is attached to the container that serves afterwards."""
    if site.proxy is None:
        reporter.step(f"{target.host.label}: starting the proxy")
        site.proxy = _start_proxy(target, tags_)
        proxy.attach(site.proxy.id)
        return
    proxy.attach(site.proxy.id)
    wanted = wanted_proxy(target, tags_)
    changes = wanted.changes(running_proxy(site.proxy, proxy))
    if not changes:
        return
    if not needs_replacing(changes):
        seconds = proxy.reload(wanted.config)
        reporter.step(f"{target.host.label}: proxy configuration changed: reloaded in {seconds:.1f}s (no connection closed)")
        return
    replace_proxy(target, site, tags_, reporter, proxy, wanted, changes)


def replace_proxy(target: Target, site: Site, tags_: Tags, reporter: Reporter, proxy: Proxy, wanted: ProxySpec,
                  changes: list[str]) -> None:
    """A new proxy container (its image pulled and checked first); the live slot alone takes traffic in it."""
    label = target.host.label
    reporter.step(f"{label}: proxy {', '.join(changes)}: replacing the proxy container "
                  "(connections are refused until the new one listens; docs/operations.md, \"Keeping the proxy current\")")
    with docker_errors(f"pulling the proxy image {wanted.image} on {label}"):
        target.compose(**tags_).compose.pull([PROXY_SERVICE], quiet=True)
    check_proxy_image(target, wanted)
    site.proxy = _start_proxy(target, tags_)
    proxy.attach(site.proxy.id)
    live = site.live
    if live and not proxy.wait(target.config.health_timeout, lambda: proxy.server(live).check_passes):
        raise DeliveryError(f"the new proxy on {label} does not pass its check of {live} within deploy.health_timeout: "
                            "see `docker logs` of the proxy, then put deploy.proxy_image back and deploy")
    if live:  # its server state stayed in the old container: the live slot alone takes traffic
        proxy.set(switch_command(live, None) + "; " + drain_command(other(live)))


def _start_proxy(target: Target, tags_: Tags) -> Container:
    """compose up the proxy (created, or replaced when its definition changed); its container."""
    compose = target.compose(**tags_)
    try:
        compose.compose.up([PROXY_SERVICE], detach=True, pull="missing", quiet=True, dependencies=False)
    except DockerException as exc:
        reason = last_line(exc)
        hint = ""
        if "already allocated" in reason or "address already in use" in reason:
            hint = f" (port {target.config.http_port} is taken on the host: free it or set deploy.http_port)"
        raise DeliveryError(f"starting the proxy on {target.host.label} failed: {reason}{hint}") from exc
    with docker_errors(f"listing the proxy on {target.host.label}"):
        return compose.compose.ps(services=[PROXY_SERVICE])[0]


def wanted_proxy(target: Target, tags_: Tags) -> ProxySpec:
    """The proxy docker-compose.yml asks for, as compose resolves it with this deploy's settings."""
    with docker_errors(f"reading the compose file {target.compose_file}"):
        model = target.compose(**tags_).compose.config(return_json=True)
    service = model["services"][PROXY_SERVICE]
    port = service["ports"][0]
    return ProxySpec(service["image"], tuple(service.get("command") or ()), f"{port.get('host_ip') or '0.0.0.0'}:{port['published']}",
                     model["configs"]["haproxy"]["content"])


def running_proxy(container: Container, proxy: Proxy) -> ProxySpec:
    """What the running proxy container is: its image reference, published address and configuration file."""
    bindings = (container.host_config.port_bindings or {}).get("8080/tcp") or []
    first = bindings[0] if bindings else None
    bind = f"{first.host_ip or '0.0.0.0'}:{first.host_port}" if first is not None else "none"
    return ProxySpec(str(container.config.image), tuple(container.config.cmd or ()), bind, proxy.running_config())


def check_proxy_image(target: Target, wanted: ProxySpec) -> None:
    """The new proxy image accepts the configuration, checked in a throwaway container with no network,
    before the running proxy is touched."""
    argv = target.docker.docker_cmd + ["run", "--rm", "-i", "--network", "none", "--entrypoint", "sh", wanted.image,
                                       "-c", "cat >/tmp/haproxy.cfg && haproxy -c -q -f /tmp/haproxy.cfg"]
    try:
        run(argv, input=wanted.config.encode())
    except DockerException as exc:
        raise DeliveryError(f"the proxy image {wanted.image} rejects the configuration ({last_line(exc)}): "
                            "the running proxy is untouched") from exc

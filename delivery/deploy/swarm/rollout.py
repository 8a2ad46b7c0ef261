"""Deploying to a Docker Swarm through a manager: the stack, a rolling update Swarm runs, measured per node.

Swarm does the rolling (docker-stack.yml: start-first, one task at a time, failure_action
rollback, a monitor window). What this module adds around it:
- before: what each node will download, predicted from the node's own engine (deploy.nodes),
  printed by --dry-run; optionally a pre-pull on every node (deploy.pre_pull);
- after: per node, the layers and bytes that arrived (its layers before and after, measured),
  the pull's seconds, the update's state (completed / rolled back / paused), its seconds,
  and the tasks that failed;
- `status`: services, tasks running and healthy per node, the digest each runs, update state.

Nodes are matched to their engines by swarm node id (`docker info` on each engine).
"""
from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.config.hosts import Host, parse_host
from delivery.config.platforms import engine_platform
from delivery.config.settings import DeployConfig
from delivery.deploy.swarm import stack as stackfile
from delivery.docker.engine import connect, last_line
from delivery.errors import DeliveryError
from delivery.hosts.lock import deploy_lock
from delivery.images import tags
from delivery.release.pullreport import HostLayers, host_layers, human_bytes, plan_pull

Say = Callable[[str], None]
WEB, CRON, PROXY = "web", "cron", "proxy"
DONE_STATES = {"completed": "completed", "rollback_completed": "rolled back", "paused": "paused", "rollback_paused": "paused"}
SETTLED = ("completed", "created", "unchanged")  # a service that runs what the stack file names
PROXY_NODE_SECONDS = 40  # the longest a node's proxy replacement may take: its stop grace (10 s), a start, the monitor


# -- talking to the swarm ---------------------------------------------------------------------
def cli(docker: DockerClient, *args: str, what: str, input: bytes | None = None) -> str:
    try:
        return str(run([*docker.docker_cmd, *args], input=input))
    except DockerException as exc:
        raise DeliveryError(f"{what} failed: {last_line(exc)}") from exc


def inspect(docker: DockerClient, *ids: str, what: str) -> list[dict[str, Any]]:
    """`docker inspect` of ids; ones that vanished in the meantime (old tasks Swarm pruned) are skipped."""
    if not ids:
        return []
    try:
        return json.loads(str(run([*docker.docker_cmd, "inspect", *ids])))
    except DockerException:
        found = []
        for one in ids:
            with contextlib.suppress(DockerException):
                found.extend(json.loads(str(run([*docker.docker_cmd, "inspect", one]))))
        if not found:
            cli(docker, "inspect", *ids, what=what)  # not a race: say what failed
        return found


def manager_error(host: str, state: str, control: bool, error: str = "") -> str | None:
    """Pure: the one-line error for an engine that cannot run a stack, or None for a manager."""
    if state == "inactive":
        return f"the engine at {host} is not in a swarm: initialise one with `docker swarm init` on it (docs/cluster.md, Set up)"
    if state in ("pending", "locked", "error"):
        return f"the swarm of the engine at {host} is {state}{f' ({error})' if error else ''}: fix it with `docker swarm` on that node"
    if not control:
        return (f"the engine at {host} is a swarm worker, not a manager: point --host at a manager "
                "(`docker node ls` on a manager lists them)")
    return None


def open_manager(host: Host) -> tuple[DockerClient, dict[str, Any]]:
    docker = connect(host)
    try:
        info = json.loads(str(run([*docker.docker_cmd, "info", "--format", "{{json .}}"])))
    except DockerException as exc:
        raise DeliveryError(f"the Docker engine at {host.label} is not reachable: {last_line(exc)} (check --host)") from exc
    swarm = info.get("Swarm") or {}
    problem = manager_error(host.label, swarm.get("LocalNodeState", "inactive"), bool(swarm.get("ControlAvailable")), swarm.get("Error", ""))
    if problem:
        raise DeliveryError(problem)
    return docker, info


@dataclass
class Node:
    id: str
    name: str
    address: str
    state: str  # ready, down, unknown
    availability: str
    engine: DockerClient | None = None  # its own engine, when listed in deploy.nodes and reachable
    engine_error: str | None = None
    store: str = "overlay2"
    platform: str = "linux/amd64"  # what the node pulls: its engine's OS and architecture, as the manager knows them


def swarm_nodes(manager: DockerClient) -> dict[str, Node]:
    ids = [line for line in cli(manager, "node", "ls", "-q", what="listing the swarm's nodes").split() if line]
    nodes = {}
    for doc in inspect(manager, *ids, what="inspecting the swarm's nodes"):
        platform = doc["Description"].get("Platform") or {}
        nodes[doc["ID"]] = Node(doc["ID"], doc["Description"]["Hostname"], doc["Status"].get("Addr", ""),
                                doc["Status"]["State"], doc["Spec"].get("Availability", ""),
                                platform=engine_platform(platform.get("OS"), platform.get("Architecture")))
    return nodes


def attach_engines(nodes: dict[str, Node], config: DeployConfig) -> list[str]:
    """Connect each deploy.nodes engine to its swarm node (by node id); the engines that did not answer."""
    unreachable = []
    for value in config.nodes:
        host = parse_host(value)
        docker = connect(host)
        try:
            info = json.loads(str(run([*docker.docker_cmd, "info", "--format", "{{json .}}"])))
        except DockerException as exc:
            unreachable.append(f"{host.label} ({last_line(exc)})")
            continue
        node = nodes.get((info.get("Swarm") or {}).get("NodeID", ""))
        if node is None:
            unreachable.append(f"{host.label} (not a node of this swarm)")
            continue
        node.engine = docker
        node.store = "containerd" if any(p[0] == "driver-type" and "containerd" in p[1] for p in info.get("DriverStatus") or []) else "overlay2"
    return unreachable


def node_layers(node: Node) -> HostLayers | None:
    if node.engine is None:
        return None
    try:
        images = node.engine.image.list()
    except DockerException as exc:
        node.engine_error = last_line(exc)
        return None
    return host_layers(node.store, ((img.id, img.repo_digests or [], img.root_fs.layers or []) for img in images))


def services(manager: DockerClient, stack: str) -> dict[str, dict[str, Any]]:
    """The stack's services by short name (web, cron, proxy), as `docker inspect` gives them."""
    ids = cli(manager, "service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}", what="listing the stack's services").split()
    found = {}
    for doc in inspect(manager, *ids, what="inspecting the stack's services"):
        found[doc["Spec"]["Name"].removeprefix(f"{stack}_")] = doc
    return found


def tasks(manager: DockerClient, service_id: str) -> list[dict[str, Any]]:
    ids = cli(manager, "service", "ps", "-q", "--no-trunc", service_id, what="listing the service's tasks").split()
    return inspect(manager, *ids, what="inspecting the service's tasks")


def service_image(service: dict[str, Any] | None) -> str | None:
    return service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] if service else None


def tag_of(image: str | None) -> str | None:
    if not image:
        return None
    _, _, tag, _ = tags.split_image_ref(image.split("@", 1)[0])
    return tag


def parse_time(text: str) -> float:
    """Docker's RFC 3339 times (nanoseconds) as a UNIX timestamp."""
    text = text.rstrip("Z")
    main, _, frac = text.partition(".")
    stamp = datetime.fromisoformat(main).replace(tzinfo=UTC).timestamp()
    return stamp + (float(f"0.{frac[:6]}") if frac else 0.0)


# -- the report -------------------------------------------------------------------------------
@dataclass
class NodeReport:
    node: str
    address: str
    state: str  # the manager's view at the end: ready / down
    measured: bool = False  # its engine answered before and after: measured_* are measurements
    predicted_layers: int | None = None
    predicted_bytes: int | None = None
    measured_layers: int | None = None  # the release's layers that arrived on the node
    measured_bytes: int | None = None
    pull_seconds: float | None = None
    tasks: int = 0  # web tasks running the release at the end
    note: str | None = None


@dataclass
class SwarmReport:
    manager: str
    stack: str
    image: str
    version: str
    digest: str
    previous: str | None = None
    update_state: str = ""  # completed, rolled back, paused, created, unchanged, timed out
    update_seconds: float = 0.0
    update_message: str | None = None
    cron_state: str = ""
    proxy_change: str | None = None  # predicted: why Swarm replaces the proxy (None: it leaves it alone)
    proxy_state: str = ""  # observed: unchanged, created, completed, rolled back, paused, timed out
    proxy_message: str | None = None
    pre_pull: bool = False
    pre_pull_seconds: float | None = None
    nodes: list[NodeReport] = field(default_factory=list)
    failed_tasks: list[dict[str, Any]] = field(default_factory=list)
    nodes_down: list[str] = field(default_factory=list)
    healthy: bool = False
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"mode": "swarm", "host": self.manager, **asdict(self)}


def measured_pull(release_manifest: Any, diff_ids: tuple[str, ...], before: HostLayers, after: HostLayers) -> tuple[int, int]:
    """Pure: (layers, bytes) of the release that arrived on a node between two looks at its layers."""
    plan_before = plan_pull("", release_manifest, diff_ids, before)
    plan_after = plan_pull("", release_manifest, diff_ids, after)
    arrived = set(plan_before.pulled_digests) - set(plan_after.pulled_digests)
    sizes = {blob.digest: blob.size for blob in release_manifest.layers}
    def present(host: HostLayers) -> bool:
        return release_manifest.digest in host.image_ids or release_manifest.config.digest in host.image_ids

    config_bytes = release_manifest.config.size if present(after) and not present(before) else 0
    return len(arrived), sum(sizes[d] for d in arrived) + config_bytes


# -- deploy -------------------------------------------------------------------------------------
def proxy_slots(replicas: int) -> int:
    """Pure: the proxy's server-template slots for `replicas` web tasks: one more for the start-first
    update's extra task, and never fewer than the 8 the stack file has by default."""
    return max(8, replicas + 1)


def stack_env(config: DeployConfig, tag: str, cron_tag: str | None = None, digest: str | None = None) -> dict[str, str]:
    """Pure: the variables docker-compose.yml and docker-stack.yml are merged with. Web's image names the
    release by tag and digest: `--resolve-image changed` then re-resolves exactly what changed."""
    env = {"REGISTRY": config.registry, "APP_TAG": f"{tag}@{digest}" if digest else tag, "CRON_TAG": cron_tag or tag,
           "HTTP_PORT": str(config.http_port), "SITE_NAME": config.site_name,
           "WEB_REPLICAS": str(config.replicas), "PROXY_SLOTS": str(proxy_slots(config.replicas)),
           "UPDATE_MONITOR": f"{max(config.monitor, 1):g}s"}
    if config.proxy_image:
        env["PROXY_IMAGE"] = config.proxy_image
    if config.cron_schedule:
        env["CRON_SCHEDULE"] = config.cron_schedule
    return env


def wanted_stack(manager: DockerClient, config: DeployConfig, root: Path, tag: str, cron_tag: str | None = None,
                 digest: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The stack document and its config files for `tag` (compose merges the files; nothing is written)."""
    model = stackfile.compose_model(manager.docker_cmd, root, stack_env(config, tag, cron_tag, digest), config.compose_project)
    return stackfile.stack_document(model, config.compose_project)


# What docker stack deploy records of each service: the image as the stack file names it (before Swarm pins a digest).
STACK_IMAGE_LABEL = "com.docker.stack.image"


def proxy_change(running: dict[str, Any] | None, document: dict[str, Any]) -> str | None:
    """Pure: why Swarm will replace the proxy's tasks (what differs between the running proxy service and the
    stack document's), or None when it will leave them alone (the same definition, or no proxy yet).

    With `--resolve-image changed`, an image named as before keeps the digest it runs: a tag that moved in
    the registry (haproxy:3.0-bookworm) reaches the nodes only when deploy.proxy_image names a new one.
    """
    if running is None:
        return None
    wanted = document["services"][PROXY]
    spec = running["Spec"]
    labels = spec.get("Labels") or {}
    if labels.get(stackfile.DEFINITION_LABEL) == wanted["deploy"]["labels"][stackfile.DEFINITION_LABEL]:
        return None
    reasons = []
    if labels.get(STACK_IMAGE_LABEL) != wanted.get("image"):
        reasons.append(f"image {labels.get(STACK_IMAGE_LABEL) or '?'} -> {wanted.get('image')}")
    container = spec["TaskTemplate"]["ContainerSpec"]
    running_configs = sorted(c.get("ConfigName", "?") for c in container.get("Configs") or [])
    wanted_configs = stackfile.config_names(wanted, document.get("configs") or {})
    if running_configs != wanted_configs:
        reasons.append(f"configuration {', '.join(running_configs) or 'none'} -> {', '.join(wanted_configs) or 'none'}")
    running_ports = sorted(p.get("PublishedPort") for p in (spec.get("EndpointSpec") or {}).get("Ports") or [])
    wanted_ports = sorted(p.get("published") for p in wanted.get("ports") or [])
    if running_ports != wanted_ports:
        reasons.append(f"port {', '.join(map(str, running_ports)) or 'none'} -> {', '.join(map(str, wanted_ports)) or 'none'}")
    if not reasons:
        reasons.append("its definition in docker-compose.yml or docker-stack.yml" if stackfile.DEFINITION_LABEL in labels
                       else "no record of its definition: an older toolkit deployed it")
    return "; ".join(reasons)


def proxy_warning(host: str, change: str, dry_run: bool = False) -> str:
    """Pure: the one line said before a deploy that replaces the proxy."""
    return (f"{host}: the proxy {'would be' if dry_run else 'will be'} replaced ({change}): Swarm replaces it node after "
            "node, stop-first (two tasks cannot bind one host-mode port), so each node refuses connections for a few "
            "seconds meanwhile (predicted; docs/cluster.md, Proxy updates)")


def pull_hint(node: str, registry: str, reason: str) -> str:
    return (f"{node} cannot pull from {registry} ({reason}): check that node's route and DNS to the registry, its "
            f"trust (/etc/docker/certs.d/{registry}/ca.crt or insecure-registries) and credentials; nothing was changed")


def pre_pull(release: Any, nodes: dict[str, Node], registry: str, say: Say) -> dict[str, float]:
    seconds = {}
    for node in nodes.values():
        if node.engine is None or node.state != "ready":
            continue
        say(f"{node.name}: pre-pulling {release.tag}")
        started = time.monotonic()
        try:
            run([*node.engine.docker_cmd, "pull", "--quiet", f"{release.image}@{release.digest}"])
        except DockerException as exc:
            raise DeliveryError(pull_hint(node.name, registry, last_line(exc))) from exc
        seconds[node.id] = round(time.monotonic() - started, 2)
    return seconds


# Always with the registry login of this machine's docker CLI (`docker login`, or deploy.registry_user's): without
# it the workers pull anonymously. `--resolve-image changed`: a service whose image is named as before keeps the
# digest it runs, so a moved tag never replaces the proxy during an ordinary release.
STACK_DEPLOY = ("stack", "deploy", "--with-registry-auth", "--resolve-image", "changed", "--detach=true", "--prune")


def stack_deploy(manager: DockerClient, host: Host, stack: str, document: dict[str, Any], files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="production-control-stack-") as tmp:
        path = stackfile.write_stack(Path(tmp), document, files)
        cli(manager, *STACK_DEPLOY, "-c", str(path), stack, what=f"docker stack deploy on {host.label}")


def wait_update(manager: DockerClient, stack: str, name: str, started: float, timeout: float, say: Say,
                watch_nodes: Callable[[], None] = lambda: None) -> tuple[str, str | None]:
    """Wait until the service's update ends; (state, message). A service created by this deploy: until it converges."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        watch_nodes()
        service = services(manager, stack).get(name)
        if service is None:
            return "missing", f"the stack has no {name} service"
        status = service.get("UpdateStatus") or {}
        state = status.get("State")
        if state and parse_time(status.get("StartedAt", "1970-01-01T00:00:00Z")) >= started - 5:
            if state != last:
                say(f"  {name}: update {state}" + (f" ({status.get('Message')})" if status.get("Message") else ""))
                last = state
            if state in DONE_STATES:
                return DONE_STATES[state], status.get("Message")
        elif time.time() - started > 3:  # no update of this deploy (a new service, or nothing changed)
            replicas = ((service["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas")
            if replicas is None:  # global (the proxy): Swarm starts an update at once when a task must change
                return ("unchanged" if service.get("PreviousSpec") else "created"), None
            current = tasks(manager, service["ID"])
            running = [t for t in current if t["Status"]["State"] == "running" and t["DesiredState"] == "running"]
            if replicas is not None and len(running) >= replicas:
                return ("unchanged" if state else "created"), None
            # A new service has nothing to roll back to: tasks that keep failing end the wait.
            failed = [t for t in current if t["Status"]["State"] in ("failed", "rejected") and parse_time(t["CreatedAt"]) >= started - 1]
            if not state and replicas is not None and len(failed) >= max(3, replicas):
                return "failed", failed[0]["Status"].get("Err") or failed[0]["Status"]["State"]
        time.sleep(1)
    return "timed out", f"still updating after {timeout:.0f}s"


def failed_tasks(manager: DockerClient, svc: dict[str, Any] | None, since: float, nodes: dict[str, Node]) -> list[dict[str, Any]]:
    if svc is None:
        return []
    found = []
    for task in tasks(manager, svc["ID"]):
        status = task["Status"]
        if parse_time(task["CreatedAt"]) < since - 1:
            continue
        if status["State"] in ("failed", "rejected") or (status.get("Err") and status["State"] != "running"):
            node = nodes.get(task.get("NodeID", ""))
            found.append({"service": svc["Spec"]["Name"], "node": node.name if node else task.get("NodeID"),
                          "state": status["State"], "error": status.get("Err") or status.get("Message"),
                          "image": tag_of(task["Spec"]["ContainerSpec"]["Image"])})
    return found


def manager_lock(manager: DockerClient, host: Host, config: DeployConfig, say: Say) -> contextlib.AbstractContextManager[None]:
    """The deploy lock (delivery/hosts/lock.py) on the manager's engine: the one compose hosts take, for the stack.

    It lives on that manager: every deploy and rollback of the stack must go through the same one (deploy.hosts).
    """
    return deploy_lock(manager, config.compose_project, host.label, host.url or host.context or "local", config.lock_wait, say)


def deploy(host: Host, config: DeployConfig, root: Path, release: Any, say: Say, dry_run: bool = False,
           login: Callable[[DockerClient], None] = lambda docker: None) -> SwarmReport:
    """Deploy `release` as the stack through the manager at `host`, under the manager's deploy lock (a dry run
    takes none); Swarm rolls it out, this measures it."""
    started = time.monotonic()
    manager, _ = open_manager(host)
    with contextlib.nullcontext() if dry_run else manager_lock(manager, host, config, say):
        return _deploy(manager, host, config, root, release, say, dry_run, login, started)


def _deploy(manager: DockerClient, host: Host, config: DeployConfig, root: Path, release: Any, say: Say, dry_run: bool,
            login: Callable[[DockerClient], None], started: float) -> SwarmReport:
    stack = config.compose_project
    report = SwarmReport(manager=host.label, stack=stack, image=release.image, version=release.tag, digest=release.digest)
    nodes = swarm_nodes(manager)
    for problem in attach_engines(nodes, config):
        say(f"node engine {problem}: no per-node prediction or measurement for it")
    before = {node.id: node_layers(node) for node in nodes.values()}
    # Each node pulls its own platform's image: a release without it stops here, before anything changes.
    variants = {nid: release.variant(node.platform, node.name) for nid, node in nodes.items()}
    plans = {nid: (plan_pull(release.image, variants[nid].manifest, variants[nid].diff_ids, layers) if layers else None)
             for nid, layers in before.items()}
    current = services(manager, stack)
    report.previous = tag_of(service_image(current.get(WEB)))
    # Web first; cron keeps its release until web's update completed (as on compose hosts).
    old_cron = tag_of(service_image(current.get(CRON)))
    document, files = wanted_stack(manager, config, root, release.tag, old_cron, release.digest)
    report.proxy_change = proxy_change(current.get(PROXY), document)
    if report.proxy_change:
        say(proxy_warning(host.label, report.proxy_change, dry_run))
    for node in nodes.values():
        plan = plans[node.id]
        entry = NodeReport(node.name, node.address, node.state)
        if plan is not None:
            entry.predicted_layers, entry.predicted_bytes = plan.pulled_layers, plan.pulled_bytes
        else:
            entry.note = "no engine listed in deploy.nodes for it: nothing predicted or measured"
        report.nodes.append(entry)
        say(f"{node.name}: " + (f"would pull {plan.pulled_layers}/{plan.total_layers} layers, {plan.pulled_bytes} bytes (predicted)" if plan else "no prediction (engine not listed)"))
    if dry_run:
        report.update_state = "dry run"
        return report
    login(manager)
    if config.pre_pull:
        pulled_at = time.monotonic()
        seconds = pre_pull(release, nodes, config.registry, say)
        report.pre_pull, report.pre_pull_seconds = True, round(time.monotonic() - pulled_at, 2)
        for entry, node in zip(report.nodes, nodes.values()):
            entry.pull_seconds = seconds.get(node.id)
    say(f"{host.label}: deploying stack {stack} with {release.tag} (previous: {report.previous or 'none'})")
    update_started = time.time()
    stack_deploy(manager, host, stack, document, files)
    timeout = config.replicas * (config.health_timeout + config.monitor + 30) + config.pull_timeout

    def watch_nodes() -> None:
        for node in swarm_nodes(manager).values():
            if node.state != "ready" and node.name not in report.nodes_down:
                say(f"{node.name}: the manager sees it {node.state}")
                report.nodes_down.append(node.name)

    report.update_state, report.update_message = wait_update(manager, stack, WEB, update_started, timeout, say, watch_nodes)
    report.update_seconds = round(time.time() - update_started, 2)
    if report.update_state in SETTLED:
        if old_cron and old_cron != release.tag:
            say(f"{host.label}: web runs {release.tag}: moving cron")
            # The image the stack file names (tag pinned to the digest, as `stack deploy` pins it), so the
            # next `stack deploy` finds cron unchanged. Not a second `stack deploy`: that would re-apply
            # web's spec and make it web's previous one, which `invoke rollback` goes back to.
            cli(manager, "service", "update", "--detach", "--image", f"{release.image}@{release.digest}",
                f"{stack}_{CRON}", what=f"moving {stack}_{CRON} to {release.tag}")
        report.cron_state, cron_message = wait_update(manager, stack, CRON, update_started, config.health_timeout + 60, say, watch_nodes)
    else:
        report.cron_state, cron_message = f"kept {old_cron or 'none'}", None
    # The proxy's update (if its definition changed) ran beside web's: node after node, a stop and a start each.
    report.proxy_state, report.proxy_message = wait_update(manager, stack, PROXY, update_started, PROXY_NODE_SECONDS * max(1, len(nodes)),
                                                           say, watch_nodes)
    watch_nodes()
    final = services(manager, stack)
    report.failed_tasks = [task for name in (WEB, CRON, PROXY) for task in failed_tasks(manager, final.get(name), update_started, nodes)]
    measure(manager, final.get(WEB), release, nodes, before, report, update_started)
    report.healthy = all(state in SETTLED for state in (report.update_state, report.cron_state, report.proxy_state))
    if not report.healthy:
        report.error = outcome_error(report, cron_message, config)
    report.seconds = round(time.monotonic() - started, 2)
    return report


def measure(manager: DockerClient, web: dict[str, Any] | None, release: Any, nodes: dict[str, Node],
            before: dict[str, HostLayers | None], report: SwarmReport, since: float) -> None:
    """Per node: the layers that arrived (its engine's layers before and after) and the pull's seconds."""
    running: dict[str, list[dict[str, Any]]] = {}
    created: dict[str, float] = {}
    for task in tasks(manager, web["ID"]) if web else []:
        if parse_time(task["CreatedAt"]) >= since - 1:
            created[task["NodeID"]] = min(created.get(task["NodeID"], 1e18), parse_time(task["CreatedAt"]))
        if task["Status"]["State"] == "running" and release.digest in task["Spec"]["ContainerSpec"]["Image"]:
            running.setdefault(task["NodeID"], []).append(task)
    states = swarm_nodes(manager)
    for entry, node in zip(report.nodes, nodes.values()):
        entry.state = states[node.id].state if node.id in states else "gone"
        entry.tasks = len(running.get(node.id, []))
        if before[node.id] is None:
            continue
        after = node_layers(node)
        if after is None:
            entry.note = f"its engine stopped answering during the update ({node.engine_error}): nothing measured"
            continue
        entry.measured = True
        variant = release.variant(node.platform, node.name)
        entry.measured_layers, entry.measured_bytes = measured_pull(variant.manifest, variant.diff_ids, before[node.id], after)
        if entry.pull_seconds is None and entry.measured_layers and node.id in created:
            pulled_at = pull_event_time(node, release, since)
            if pulled_at is not None:
                entry.pull_seconds = round(max(0.0, pulled_at - created[node.id]), 2)


def pull_event_time(node: Node, release: Any, since: float) -> float | None:
    """When the node's engine reported the release's image pulled (its `docker events`)."""
    assert node.engine is not None
    try:
        out = run([*node.engine.docker_cmd, "events", "--since", f"{since - 1:.0f}", "--until", f"{time.time():.0f}",
                   "--filter", "type=image", "--filter", "event=pull", "--format", "{{json .}}"])
    except DockerException:
        return None
    for line in str(out).splitlines():
        event = json.loads(line)
        if release.tag in event.get("id", "") or release.digest in event.get("id", ""):
            return event.get("timeNano", 0) / 1e9
    return None


def outcome_error(report: SwarmReport, cron_message: str | None, config: DeployConfig) -> str:
    """Pure: the one line for a swarm deploy that did not complete."""
    service = f"{report.stack}_{WEB}"
    unreachable = [t for t in report.failed_tasks if "No such image" in (t["error"] or "") or "pull" in (t["error"] or "").lower()]
    if report.update_state == "paused":
        return (f"the update of {service} to {report.version} is paused by Swarm ({report.update_message or 'a task failed'}): "
                f"resume it with `docker service update --detach=false {service}` on a manager, or go back with `invoke rollback`")
    if unreachable:
        first = unreachable[0]
        return pull_hint(first["node"], config.registry, first["error"]).replace("; nothing was changed", "") + f"; the update {report.update_state}"
    if report.update_state == "rolled back":
        why = report.failed_tasks[0]["error"] if report.failed_tasks else report.update_message
        return f"{report.version} failed on the swarm ({why}): Swarm rolled {service} back; {report.previous or 'the previous release'} is serving"
    if report.update_state == "failed":
        return (f"{report.version} failed on the swarm ({report.update_message}): its tasks keep failing and there is "
                f"no previous release to roll back to; fix the release and deploy again, or `docker stack rm {report.stack}`")
    if report.update_state not in SETTLED:
        return f"the update of {service} to {report.version} {report.update_state} ({report.update_message}): see `invoke status`"
    if report.proxy_state not in SETTLED and report.proxy_state:
        proxy = f"{report.stack}_{PROXY}"
        if report.proxy_state == "rolled back":
            return (f"the new proxy failed on the swarm ({report.proxy_message or 'a task failed'}): Swarm rolled {proxy} back, "
                    f"the previous one serves on every node; fix deploy.proxy_image or docker-stack.yml and deploy again")
        return (f"the update of {proxy} {report.proxy_state} ({report.proxy_message or 'no message'}): a node may have no proxy; "
                f"see `docker service ps {proxy}` on a manager")
    return f"cron of {report.version} did not start ({report.cron_state}: {cron_message}); see `invoke status`"


# -- rollback and status --------------------------------------------------------------------------
def rollback(host: Host, config: DeployConfig, say: Say) -> SwarmReport:
    """`docker service rollback` of web (then cron): back to the spec before the last update (one step, Swarm's),
    under the manager's deploy lock."""
    started = time.monotonic()
    manager, _ = open_manager(host)
    with manager_lock(manager, host, config, say):
        return _rollback(manager, host, config, say, started)


def _rollback(manager: DockerClient, host: Host, config: DeployConfig, say: Say, started: float) -> SwarmReport:
    stack = config.compose_project
    current = services(manager, stack)
    if WEB not in current:
        raise DeliveryError(f"no stack {stack} on the swarm of {host.label}: deploy first (`invoke deploy`)")
    previous = current[WEB].get("PreviousSpec")
    if not previous:
        raise DeliveryError(f"{stack}_{WEB} has no previous release to go back to (it was deployed once)")
    image = previous["TaskTemplate"]["ContainerSpec"]["Image"]
    report = SwarmReport(manager=host.label, stack=stack, image=image.split("@")[0], version=tag_of(image) or "",
                         digest=image.partition("@")[2], previous=tag_of(service_image(current[WEB])))
    say(f"{host.label}: rolling {stack}_{WEB} back from {report.previous} to {report.version} (Swarm's previous spec)")
    began = time.time()
    for name in (WEB, CRON):
        if name in current and current[name].get("PreviousSpec"):
            cli(manager, "service", "rollback", "--detach", f"{stack}_{name}", what=f"rolling back {stack}_{name}")
    report.update_state, report.update_message = wait_update(manager, stack, WEB, began, config.replicas * (config.health_timeout + 30), say)
    report.cron_state, _ = wait_update(manager, stack, CRON, began, config.health_timeout + 60, say)
    report.update_seconds = round(time.time() - began, 2)
    report.healthy = report.update_state in ("rolled back", "completed")
    if not report.healthy:
        report.error = f"the rollback of {stack}_{WEB} {report.update_state} ({report.update_message}): see `invoke status`"
    report.seconds = round(time.monotonic() - started, 2)
    return report


def status(host: Host, config: DeployConfig) -> dict[str, Any]:
    """The stack's services: update state, tasks running and healthy per node, the digest each task runs."""
    manager, _ = open_manager(host)
    nodes = swarm_nodes(manager)
    attach_engines(nodes, config)
    found = services(manager, config.compose_project)
    result: dict[str, Any] = {"mode": "swarm", "host": host.label, "stack": config.compose_project,
                              "nodes": {n.name: {"state": n.state, "availability": n.availability, "address": n.address} for n in nodes.values()},
                              "services": {}}
    for name, svc in sorted(found.items()):
        update = svc.get("UpdateStatus") or {}
        mode = svc["Spec"].get("Mode") or {}
        entry: dict[str, Any] = {
            "image": service_image(svc).split("@")[0], "tag": tag_of(service_image(svc)),
            "replicas": (mode.get("Replicated") or {}).get("Replicas", "global"),
            "update_state": DONE_STATES.get(update.get("State", ""), update.get("State") or "none"),
            "update_message": update.get("Message"), "per_node": {}, "tasks": [],
        }
        for task in tasks(manager, svc["ID"]):
            if task["DesiredState"] != "running":
                continue
            node = nodes.get(task.get("NodeID", ""))
            node_name = node.name if node else task.get("NodeID", "?")
            health = task_health(node, task)
            image = task["Spec"]["ContainerSpec"]["Image"]
            entry["tasks"].append({"node": node_name, "state": task["Status"]["State"], "health": health,
                                   "tag": tag_of(image), "digest": image.partition("@")[2] or None})
            counts = entry["per_node"].setdefault(node_name, {"running": 0, "healthy": 0})
            counts["running"] += task["Status"]["State"] == "running"
            counts["healthy"] += health == "healthy"
        result["services"][name] = entry
    return result


def task_health(node: Node | None, task: dict[str, Any]) -> str | None:
    """The task container's health from its node's engine; without one, Swarm's view (running = passed)."""
    container = ((task["Status"].get("ContainerStatus") or {}).get("ContainerID"))
    if node is not None and node.engine is not None and container:
        with contextlib.suppress(DockerException):
            state = node.engine.container.inspect(container).state
            return state.health.status if state.health else ("no healthcheck" if state.status == "running" else state.status)
    # Swarm holds a task in `starting` until its healthcheck passes: running means it passed.
    return "healthy" if task["Status"]["State"] == "running" else task["Status"]["State"]


def format_report(report: dict[str, Any]) -> str:
    def size(n: int | None) -> str:
        return "-" if n is None else human_bytes(n)

    lines = [f"swarm           {report['manager']} (stack {report['stack']})",
             f"image           {report['image']}", f"previous        {report['previous'] or 'none'}"]
    if report["update_state"] == "dry run":
        lines.append(f"proxy           {'would be replaced: ' + report['proxy_change'] if report['proxy_change'] else 'left as it is'} (predicted)")
        lines.append("predicted downloads per node (nothing changed):")
    lines.append(f"  {'node':<14} {'state':<7} {'predicted':>12} {'measured':>12} {'pull s':>7} tasks")
    for node in report["nodes"]:
        lines.append(f"  {node['node']:<14} {node['state']:<7} {size(node['predicted_bytes']):>12} {size(node['measured_bytes']):>12} "
                     f"{'-' if node['pull_seconds'] is None else format(node['pull_seconds'], '.2f'):>7} {node['tasks']}"
                     + (f"  ({node['note']})" if node["note"] else ""))
    if report["update_state"] != "dry run":
        lines.append(f"update          {report['update_state']} in {report['update_seconds']:.1f}s" + (f" ({report['update_message']})" if report["update_message"] else ""))
        lines.append(f"cron            {report['cron_state']}")
        lines.append(f"proxy           {report['proxy_state'] or 'left as it is'}" + (f" (replaced: {report['proxy_change']})" if report["proxy_change"] else ""))
        if report["pre_pull"]:
            lines.append(f"pre-pull        {report['pre_pull_seconds']:.1f}s before the update")
        for task in report["failed_tasks"]:
            lines.append(f"failed task     {task['service']} on {task['node']}: {task['state']} ({task['error']})")
        if report["nodes_down"]:
            lines.append(f"nodes down      {', '.join(report['nodes_down'])}")
    return "\n".join(lines)


def format_status(entry: dict[str, Any]) -> str:
    lines = [f"swarm {entry['host']}  stack {entry['stack']}  nodes: " + ", ".join(f"{n} {v['state']}" for n, v in entry["nodes"].items())]
    for name, svc in entry["services"].items():
        lines.append(f"  {name:<6} {svc['tag']}  replicas {svc['replicas']}  update {svc['update_state']}")
        for node, counts in sorted(svc["per_node"].items()):
            digests = sorted({t["digest"] or "?" for t in svc["tasks"] if t["node"] == node})
            checked = any(t["health"] != "no healthcheck" for t in svc["tasks"] if t["node"] == node)
            health = f"{counts['healthy']} healthy" if checked else "no healthcheck"
            lines.append(f"    {node:<14} {counts['running']} running, {health}  {', '.join(d[:19] for d in digests)}")
    if not entry["services"]:
        lines.append("  nothing deployed (first deploy: `invoke deploy`)")
    return "\n".join(lines)

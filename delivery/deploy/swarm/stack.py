"""The swarm stack file: docker-compose.yml with the docker-stack.yml overlay, merged by compose.

Compose does the merging and the variable interpolation (`docker compose config`); what
is left here is the small, pure translation of compose's output into what `docker stack
deploy` accepts (its loader is older than compose's):
- the top-level `name` and null fields are dropped;
- published ports are numbers;
- `tmpfs: [path[:size=N], ...]` (which swarm ignores) becomes tmpfs mounts, the form swarm runs,
  with their size in bytes;
- an inline config (`content:`) becomes a file beside the stack file, and its swarm name
  carries a hash of the content (swarm configs cannot change: a new content is a new config);
- `security_opt` goes: `docker stack deploy` cannot set it (it would drop it with a warning nobody
  reads). What replaces no-new-privileges there is in docs/cluster.md, "Hardening": the image has no
  setuid or setgid file. Everything else of the hardening (read_only, cap_drop, cap_add, init, the
  memory limit, the log bounds) reaches the services as it is;
- each service carries a hash of its own definition (its part of the stack file, with the swarm
  names of its configs) in a service label: a deploy compares it with the running service's to say,
  before anything changes, whether Swarm will replace that service's tasks (the proxy's cost a moment
  of refused connections on each node). A service label alone never restarts a task.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from delivery.docker.engine import last_line, without_shell_environment
from delivery.errors import DeliveryError

OVERLAY = "docker-stack.yml"
# What docker-compose.yml sets and `docker stack deploy` cannot run (docs/cluster.md, "Hardening").
SWARM_DROPS = ("security_opt",)
DEFINITION_LABEL = "production-control.definition"  # a service label: definition_hash of its stack file entry


def stack_document(model: Mapping[str, Any], stack: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Pure: (the stack document, {file name: content} of the inline configs to write beside it)."""
    document = json.loads(json.dumps(model))  # a deep copy
    document.pop("name", None)
    files: dict[str, str] = {}
    for name, config in (document.get("configs") or {}).items():
        if "content" in config:
            content = config.pop("content")
            digest = hashlib.sha256(content.encode()).hexdigest()[:12]
            files[f"{name}.conf"] = content
            config["file"] = f"./{name}.conf"
            config["name"] = f"{stack}_{name}-{digest}"
    for service in (document.get("services") or {}).values():
        for key in [key for key, value in service.items() if value is None or key in SWARM_DROPS]:
            del service[key]
        paths = service.pop("tmpfs", None) or []
        service["volumes"] = [*(service.get("volumes") or []), *(tmpfs_mount(path) for path in paths)]
        for port in service.get("ports") or []:
            if isinstance(port.get("published"), str) and port["published"].isdigit():
                port["published"] = int(port["published"])
    configs = document.get("configs") or {}
    for service in (document.get("services") or {}).values():
        label = definition_hash(service, configs)
        deploy = service.setdefault("deploy", {})
        deploy["labels"] = {**(deploy.get("labels") or {}), DEFINITION_LABEL: label}
    return document, files


def config_names(service: Mapping[str, Any], configs: Mapping[str, Any]) -> list[str]:
    """Pure: the swarm names of the configs a service of the stack document mounts, sorted."""
    return sorted(str((configs.get(ref["source"]) or {}).get("name") or ref["source"]) for ref in service.get("configs") or [])


def definition_hash(service: Mapping[str, Any], configs: Mapping[str, Any]) -> str:
    """Pure: a hash of a service's stack file entry (without this label) and of the configs it mounts."""
    entry = json.loads(json.dumps(service))
    deploy = entry.get("deploy") or {}
    labels = deploy.get("labels") or {}
    labels.pop(DEFINITION_LABEL, None)
    if not labels:
        deploy.pop("labels", None)
    if not deploy:
        entry.pop("deploy", None)
    text = json.dumps({"service": entry, "configs": config_names(service, configs)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def tmpfs_mount(entry: str) -> dict[str, Any]:
    """Pure: a stack file's tmpfs mount for a compose `tmpfs:` entry, `/path` or `/path:size=64m[,...]`."""
    target, _, options = entry.partition(":")
    mount: dict[str, Any] = {"type": "tmpfs", "target": target}
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        number, unit = value.rstrip("kKmMgGbB"), value[len(value.rstrip("kKmMgGbB")):].lower().rstrip("b")
        if key != "size" or not number.isdigit() or unit not in _UNITS:
            raise DeliveryError(f"the tmpfs {entry!r} in docker-compose.yml has an option swarm cannot run: use /path or /path:size=64m")
        mount["tmpfs"] = {"size": int(number) * _UNITS[unit]}
    return mount


def compose_model(docker_cmd: list[str], root: Path, env: Mapping[str, str], project: str) -> dict[str, Any]:
    """`docker compose config` of docker-compose.yml + docker-stack.yml with `env` (interpolated, merged).

    Compose sees `env` and the clean part of this process's environment only (delivery/docker/engine.py).
    """
    argv = [*without_shell_environment([str(part) for part in docker_cmd], os.environ, own=tuple(env)),
            "compose", "--project-name", project, "--project-directory", str(root), "-f", str(root / "docker-compose.yml"),
            "-f", str(root / OVERLAY), "config", "--format", "json"]
    try:
        output = run(argv, env=dict(env))
    except DockerException as exc:
        raise DeliveryError(f"docker compose could not merge docker-compose.yml with {OVERLAY}: {last_line(exc)}") from exc
    model: dict[str, Any] = json.loads(str(output))
    return model


def write_stack(directory: Path, document: Mapping[str, Any], files: Mapping[str, str]) -> Path:
    """Write the stack file (JSON is YAML) and its config files into `directory`; the stack file's path."""
    for name, content in files.items():
        (directory / name).write_text(content)
    path = directory / "stack.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True))
    return path

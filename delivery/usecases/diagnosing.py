"""The doctor runbook: which builder the build tasks use and the path it takes."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from delivery.config import platforms
from delivery.config.hosts import parse_host
from delivery.config.settings import load_config
from delivery.docker.engine import connect
from delivery.errors import DeliveryError
from delivery.images.builder import check_platforms, detect


def doctor(section: Mapping[str, Any]) -> dict[str, Any]:
    """Which builder the build tasks would use and which path they would take; fails, naming the fix, when none."""
    config = load_config(section)
    local = parse_host("local")
    info = detect(connect(local), local)
    try:
        check_platforms(info, config.platforms)
        problem = None
    except DeliveryError as exc:
        problem = str(exc)
    buildable = [info.native] if not info.reproducible else [  # the classic store: its own platform only
        p for p in platforms.SUPPORTED if not platforms.missing_from_builder([p], (info.native, *info.platforms))]
    return {"builder": info.as_dict(), "registry": config.registry, "platforms": list(config.platforms),
            "buildable": buildable, "platforms_problem": problem}


def format_doctor(result: Mapping[str, Any]) -> str:
    b = result["builder"]
    lines = [
        f"builder       {b['name']} ({b['driver']} driver, {b['status'] or 'status unknown'})",
        f"BuildKit      {b['buildkit']}",
        f"engine        Docker Engine {b['engine']}, {b['image_store']} image store",
        f"build path    {b['path']}: " + ("reproducible OCI layout, pushed by the toolkit (same commit, same digest)"
                                          if b["reproducible"] else "built into the engine, pushed with docker push"),
    ]
    if not b["reproducible"]:
        lines.append(f"loses         {b['loses']}")
        lines.append(f"reproducible  {b['to_reproducible']}")
    if result.get("platforms"):
        lines.append(f"platforms     {', '.join(result['platforms'])} (deploy.platforms); this builder can build "
                     f"{', '.join(result.get('buildable') or []) or 'none of them'}")
    if result.get("platforms_problem"):
        lines.append(f"cannot build  {result['platforms_problem']}")
    lines.append(f"registry      {result['registry']}")
    return "\n".join(lines)

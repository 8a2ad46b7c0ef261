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
from delivery.ui.reports import DoctorResult, builder_entry


def doctor(section: Mapping[str, Any]) -> DoctorResult:
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
    return {"builder": builder_entry(info), "registry": config.registry, "platforms": list(config.platforms),
            "buildable": buildable, "platforms_problem": problem}

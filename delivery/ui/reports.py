"""The typed reports the runbooks build themselves (the deployers' are in delivery/deploy/reports.py).

TypedDicts: at run time plain dicts, so `--json` prints them as they are; the formatters
(delivery/ui/text.py) read them through these types.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, cast

from delivery.images.builder import BuilderInfo


class BuilderEntry(TypedDict):
    """BuilderInfo.as_dict() (delivery/images/builder.py)."""

    name: str
    driver: str
    status: str
    buildkit: str
    engine: str
    image_store: str
    path: str
    native: str
    platforms: Sequence[str]
    reproducible: bool
    loses: str | None
    to_reproducible: str | None


class DoctorResult(TypedDict, total=False):
    """`invoke doctor`: the builder, the registry, deploy.platforms and what this builder can build of them."""

    builder: BuilderEntry
    registry: str
    platforms: list[str]
    buildable: list[str]
    platforms_problem: str | None


def builder_entry(info: BuilderInfo) -> BuilderEntry:
    """The builder as the doctor report shows it: BuilderInfo.as_dict(), typed."""
    return cast(BuilderEntry, info.as_dict())

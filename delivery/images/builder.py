"""Which builder builds the images, and which of the two build paths it takes.

Checked before any build work (and shown by `invoke doctor`):

- "layout", reproducible: BuildKit writes an OCI layout with every file time
  rewritten to SOURCE_DATE_EPOCH, and the toolkit pushes it. Needs BuildKit's
  `oci` exporter with `rewrite-timestamp` (BuildKit >= 0.13): a `docker-container`
  (or remote, kubernetes) builder, or the `docker` driver on an engine that keeps
  images in the containerd store (Engine >= 26).
- "engine", for the `docker` driver on an engine with the classic (overlay2)
  image store, which has no `oci` exporter: the image is built into the engine
  and pushed by it (`docker push`). The app image is still FROM the pushed deps
  image, so a code-only release still ships only its code layers. What it loses:
  the RUN layers (OS packages, dependency groups) carry the build's file times,
  so rebuilding the same deps inputs gives new deps layers (docs/performance.md
  has the measured cost).

Platforms (deploy.platforms): the layout path builds every platform in one go and writes
one index; other platforms than the builder's own run under QEMU user emulation, which
the builder must list. The classic image store holds one platform per image, so the
engine path builds only the engine's own platform and stops, in one line, when
deploy.platforms asks for more (`check_platforms`).

`choose_path` and `check_platforms` are pure; `detect` asks the CLI and the engine.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.config.hosts import Host
from delivery.config.platforms import EMULATION_HINT, missing_from_builder
from delivery.docker.engine import check_engine, last_line
from delivery.errors import DeliveryError

LAYOUT, ENGINE = "layout", "engine"
MIN_BUILDKIT = (0, 13)  # the oci exporter's rewrite-timestamp option
MIN_ENGINE_FOR_LAYOUT = (26, 0)  # the first engine that bundles BuildKit 0.13
LAYOUT_DRIVERS = ("docker-container", "remote", "kubernetes")
TO_REPRODUCIBLE = (
    'enable the containerd image store ("features": {"containerd-snapshotter": true} in /etc/docker/daemon.json, '
    "then restart dockerd) or use a docker-container builder (`docker buildx create --use`)"
)
WHAT_ENGINE_PATH_LOSES = (
    "not byte-reproducible: the classic image store cannot rewrite file times, so the RUN layers of a "
    "rebuilt deps image differ from the last ones"
)


@dataclass(frozen=True)
class BuilderInfo:
    """The current buildx builder, the engine behind the CLI, and the build path they give."""

    name: str
    driver: str
    status: str
    buildkit: str  # the node's BuildKit version, or "bundled with Engine X" when it does not say
    engine: str  # the engine's version (the CLI's engine, which also runs `docker push` on the engine path)
    image_store: str  # "containerd" or "overlay2"
    path: str  # LAYOUT or ENGINE
    native: str = "linux/amd64"  # the engine's own platform
    platforms: tuple[str, ...] = ()  # what the builder can build: its own, and what QEMU emulation adds

    @property
    def reproducible(self) -> bool:
        return self.path == LAYOUT

    def summary(self) -> str:
        """One line for the build tasks: which builder, and which path."""
        where = f"builder {self.name} ({self.driver} driver, BuildKit {self.buildkit}, Engine {self.engine}, {self.image_store} image store)"
        if self.reproducible:
            return f"{where}: reproducible build to an OCI layout, pushed by the toolkit"
        return f"{where}: building into the engine and pushing with docker push ({WHAT_ENGINE_PATH_LOSES})"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "reproducible": self.reproducible,
                "loses": None if self.reproducible else WHAT_ENGINE_PATH_LOSES,
                "to_reproducible": None if self.reproducible else TO_REPRODUCIBLE}


def version_tuple(text: str | None) -> tuple[int, int] | None:
    """(major, minor) of "v0.13.1", "26.1.5+dfsg1", ...; None for none or the unknown v0.0.0."""
    match = re.search(r"(\d+)\.(\d+)(?:\.\d+)?", text or "")
    if not match or (int(match.group(1)), int(match.group(2))) == (0, 0):
        return None
    return int(match.group(1)), int(match.group(2))


def choose_path(name: str, driver: str, status: str, buildkit: str | None, engine: str, image_store: str) -> str:
    """Pure: LAYOUT or ENGINE for this builder; a DeliveryError naming the fix for anything else."""
    if status and status != "running" and not (driver == "docker-container" and status == "inactive"):
        raise DeliveryError(
            f"buildx builder {name} is {status}: start it (`docker buildx inspect --bootstrap {name}`) "
            "or switch to the engine's own builder (`docker buildx use default`)"
        )
    if driver == "docker":
        if image_store != "containerd":
            return ENGINE
        if (version_tuple(engine) or (0, 0)) >= MIN_ENGINE_FOR_LAYOUT:
            return LAYOUT
        raise DeliveryError(
            f"Engine {engine} keeps images in the containerd store but its BuildKit cannot rewrite file times: "
            "upgrade Docker Engine to 26 or newer, or use a docker-container builder (`docker buildx create --use`)"
        )
    if driver in LAYOUT_DRIVERS:
        version = version_tuple(buildkit)
        if version is not None and version < MIN_BUILDKIT:
            raise DeliveryError(
                f"buildx builder {name} runs BuildKit {buildkit}, older than 0.13: "
                f"`docker buildx rm {name} && docker buildx create --use` (a current moby/buildkit image)"
            )
        return LAYOUT
    raise DeliveryError(
        f"buildx builder {name} uses the {driver!r} driver, which this toolkit does not support: "
        "`docker buildx use default` (the engine's builder) or `docker buildx create --use`"
    )


def check_platforms(info: BuilderInfo, wanted: tuple[str, ...]) -> None:
    """Pure: can this builder build `wanted` (deploy.platforms)? One line naming the fix when not."""
    if info.path == ENGINE and wanted != (info.native,):
        raise DeliveryError(
            f"deploy.platforms is {','.join(wanted)}, but the classic image store of Engine {info.engine} holds one platform "
            f"per image and builds only its own ({info.native}): set deploy.platforms to {info.native} "
            f"(INVOKE_DEPLOY_PLATFORMS={info.native}), or for several platforms {TO_REPRODUCIBLE}"
        )
    missing = missing_from_builder(wanted, (info.native, *info.platforms))
    if missing:
        raise DeliveryError(
            f"builder {info.name} cannot build {', '.join(missing)} (it runs {', '.join(info.platforms) or info.native}): "
            f"{EMULATION_HINT}, or leave {', '.join(missing)} out of deploy.platforms"
        )


def detect(docker: DockerClient, host: Host) -> BuilderInfo:
    """The current builder of `docker` (the buildx CLI's choice: `docker buildx use`, BUILDX_BUILDER)."""
    engine = check_engine(docker, host, need_buildx=True)
    try:
        builder = docker.buildx.inspect()
        node = builder.nodes[0] if builder.nodes else None
        if builder.driver != "docker" and (node is None or not node.version):
            builder = docker.buildx.inspect(builder.name, bootstrap=True)  # a stopped builder reports no version
            node = builder.nodes[0] if builder.nodes else None
    except DockerException as exc:
        raise DeliveryError(
            f"cannot inspect the current buildx builder: {last_line(exc)} (`docker buildx ls` lists them; "
            "`docker buildx use default` picks the engine's own)"
        ) from exc
    name, driver = str(builder.name), str(builder.driver)
    status = str(node.status or "") if node else ""
    reported = (node.version if node else None) or ""
    buildkit = reported if version_tuple(reported) else (f"bundled with Engine {engine.server_version}" if driver == "docker" else "unknown")
    path = choose_path(name, driver, status, reported, engine.server_version, engine.image_store)
    platforms = tuple(str(p) for p in ((node.platforms if node else None) or []))
    return BuilderInfo(name, driver, status, buildkit, engine.server_version, engine.image_store, path,
                       native=engine.platform, platforms=platforms)

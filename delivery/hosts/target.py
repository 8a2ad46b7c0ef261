"""One host as the compose deploy sees it: its engine, its settings and the project's compose file.

A Target runs compose with the releases of each service named in an env file (`compose_env`, pure):
each release by its tag pinned to a digest (`tag@sha256:...`, delivery/images/tags.py), so the engine
runs exactly the image the deploy checked, whatever the tag names meanwhile.
"""
from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from python_on_whales import DockerClient

from delivery.config.hosts import Host
from delivery.config.settings import DeployConfig
from delivery.docker.engine import EngineInfo, check_engine, connect


@dataclass
class Target:
    """One host, as seen through compose with the project's compose file."""

    host: Host
    config: DeployConfig
    compose_file: Path
    docker: DockerClient = field(init=False)
    info: EngineInfo = field(init=False)
    _tmp: tempfile.TemporaryDirectory[str] = field(init=False, repr=False)
    _env_files: Iterator[int] = field(init=False, repr=False, default_factory=itertools.count)

    def __post_init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="production-control-")
        self.docker = connect(self.host)
        self.info = check_engine(self.docker, self.host, need_compose=True)

    def compose(self, blue: str | None = None, green: str | None = None, cron: str | None = None) -> DockerClient:
        """A client whose compose commands run the project with these releases (tags, or `tag@sha256:...`)
        in the web slots and cron."""
        env_file = Path(self._tmp.name) / f"{next(self._env_files)}.env"
        env_file.write_text("\n".join(compose_env(self.config, blue, green, cron)) + "\n")
        return connect(
            self.host,
            compose_files=[self.compose_file],
            compose_env_file=env_file,
            compose_project=self.config.compose_project,
        )

    @property
    def host_arg(self) -> str:
        """How to name this host on the command line (--host)."""
        return self.host.url or self.host.context or "local"

    def close(self) -> None:
        self._tmp.cleanup()


def compose_env(config: DeployConfig, blue: str | None, green: str | None, cron: str | None) -> list[str]:
    """Pure: the lines of the env file compose runs the project with. Each release is a tag, or a tag pinned to
    its digest (`1.0.0-abc@sha256:...`): docker-compose.yml then names `<registry>/production-control:<tag>@<digest>`,
    and the engine runs exactly that digest, whatever the tag names meanwhile."""
    lines = [
        f"REGISTRY={config.registry}", f"HTTP_PORT={config.http_port}", f"SITE_NAME={config.site_name}",
        f"APP_TAG={cron or blue or green or 'none'}", f"BLUE_TAG={blue or ''}", f"GREEN_TAG={green or ''}",
    ]
    if config.proxy_image:
        lines.append(f"PROXY_IMAGE={config.proxy_image}")
    if config.cron_schedule:  # validated: five fields, no control character
        lines.append(f"CRON_SCHEDULE={config.cron_schedule}")
    return lines

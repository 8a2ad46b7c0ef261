"""Replacing cron at the end of a handover: the new cron starts by the release's pin, and one that runs another
image is put back on the old cron's own ref (a fake docker port)."""

from types import SimpleNamespace
from typing import Any

import pytest

from delivery.config.settings import load_config
from delivery.deploy.compose.cron import replace_cron
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.compose.state import Handover
from delivery.errors import CronFailed
from delivery.hosts import site as sites
from delivery.reporting import Recorded

RELEASE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
TAG = "2.0.0-abcdef123456"
PINNED = f"{TAG}@{RELEASE}"


class CronPort:
    """Just enough of a docker port for replace_cron: cron starts from `runs`, which is healthy."""

    def __init__(self, runs: str) -> None:
        self.runs = runs
        self.started: list[str | None] = []

    def up(self, service: str, tags_: dict[str, str | None]) -> Any:
        self.started.append(tags_["cron"])
        return SimpleNamespace(id="c1", image=self.runs)

    def wait_healthy(self, container_id: str, timeout: float, reporter: Any) -> tuple[bool, str]:
        return True, "healthy"

    def running_image(self, image_id: str) -> tuple[list[str], str]:
        return {RELEASE: [RELEASE]}.get(image_id, []), "linux/amd64"


def _cron_handover(runs: str, previous: str | None, tag: str, pin: str | None = None) -> tuple[Handover, CronPort, Recorded]:
    """A handover of `tag` whose cron ran `previous` (a ref), about to replace cron."""
    port, said = CronPort(runs), Recorded()
    cron = None if previous is None else SimpleNamespace(config=SimpleNamespace(image=f"localhost:5000/production-control:{previous}"))
    site = sites.Site(web={}, cron=cron, proxy=None, legacy=None)  # type: ignore[arg-type]
    report = DeployReport(host="h1", image="i", version=tag, digest=RELEASE)
    h = Handover(port, said, "h1", load_config({}), site, tag, report, digests=frozenset({RELEASE}), pin=pin)  # type: ignore[arg-type]
    return h, port, said


def test_cron_of_another_image_is_put_back() -> None:
    h, port, _ = _cron_handover(OTHER, "1.0.0-abcdef123456", "2.0.0-abcdef123456")
    with pytest.raises(CronFailed, match=f"cron of 2.0.0-abcdef123456 failed on h1: it runs image {OTHER}, not {RELEASE}; .*put back on 1.0.0"):
        replace_cron(h)
    assert port.started == ["2.0.0-abcdef123456", "1.0.0-abcdef123456"]


def test_cron_of_the_release_passes() -> None:
    h, port, _ = _cron_handover(RELEASE, None, "2.0.0-abcdef123456")
    replace_cron(h)
    assert port.started == ["2.0.0-abcdef123456"]


def test_cron_starts_by_the_pin_and_goes_back_to_the_old_crons_own() -> None:
    previous = f"1.0.0-abcdef123456@{OTHER}"
    h, port, said = _cron_handover(OTHER, previous, TAG, pin=PINNED)
    with pytest.raises(CronFailed, match=r"put back on 1\.0\.0-abcdef123456$"):
        replace_cron(h)
    assert port.started == [PINNED, previous]
    assert said.lines == [f"h1: replacing cron (1.0.0-abcdef123456 -> {TAG})"]

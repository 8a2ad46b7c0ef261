"""What runs on a host: the survey of the project's containers, and which slot is live (asking the proxy only
when both slots run), with a fake compose client and a fake proxy read."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from delivery.deploy.compose.proxy import ServerStats
from delivery.errors import DeliveryError
from delivery.hosts.site import Site, live_slot, running_ref, running_tag, survey

EARLY, LATE = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
DIGEST = "sha256:" + "a" * 64


def _container(service: str, tag: str = "1.0.0-abcdef123456", status: str = "running", started: datetime = EARLY) -> Any:
    return SimpleNamespace(id=f"{service}-id", config=SimpleNamespace(labels={"com.docker.compose.service": service},
                                                                      image=f"localhost:5000/production-control:{tag}"),
                           state=SimpleNamespace(status=status, started_at=started))


def _target(containers: list[Any]) -> Any:
    compose = SimpleNamespace(compose=SimpleNamespace(ps=lambda all: containers))
    return SimpleNamespace(compose=lambda: compose, host=SimpleNamespace(label="h1"))


def _servers(blue: tuple[int, str], green: tuple[int, str]) -> dict[str, ServerStats]:
    return {slot: ServerStats(slot, status, "L7OK", weight, 0, 0, 0, 0) for slot, (weight, status) in (("blue", blue), ("green", green))}


def _never(container: str | None) -> dict[str, ServerStats]:
    raise AssertionError("the proxy was asked with one slot running")


def test_one_running_slot_is_live_without_asking_the_proxy() -> None:
    site = survey(_target([_container("web-green"), _container("cron"), _container("proxy"),
                           _container("web-blue", status="exited")]), _never)
    assert (site.live, list(site.web), site.cron is not None, site.proxy is not None, site.legacy) == ("green", ["green"], True, True, None)


def test_nothing_running_is_a_first_deploy() -> None:
    site = survey(_target([]), _never)
    assert (site.live, site.live_tag, site.live_ref, site.live_container) == (None, None, None, None)


def test_the_single_container_layout_is_the_legacy_service() -> None:
    site = survey(_target([_container("app", tag="0.9.0-abcdef123456")]), _never)
    assert (site.live, site.live_tag, site.legacy is not None) == (None, "0.9.0-abcdef123456", True)


def test_with_both_slots_running_the_proxy_says_which_is_live() -> None:
    asked: list[str | None] = []

    def servers(container: str | None) -> dict[str, ServerStats]:
        asked.append(container)
        return _servers((1, "UP"), (256, "UP"))

    site = survey(_target([_container("web-blue", started=EARLY), _container("web-green", started=LATE), _container("proxy")]), servers)
    assert (site.live, asked) == ("green", ["proxy-id"])


def test_with_both_slots_running_and_no_proxy_answer_the_older_one_is_live() -> None:
    def servers(container: str | None) -> dict[str, ServerStats]:
        raise DeliveryError("no proxy container to reach the proxy's runtime API in")

    site = survey(_target([_container("web-blue", started=LATE), _container("web-green", started=EARLY)]), servers)
    assert site.live == "green"


@pytest.mark.parametrize(
    ("servers", "live"),
    [
        pytest.param(_servers((256, "UP"), (256, "DRAIN")), "blue", id="new-held-not-yet-switched"),
        pytest.param(_servers((1, "UP"), (256, "UP")), "green", id="switched-old-is-fallback"),
        pytest.param(_servers((256, "UP"), (256, "UP")), "blue", id="restarted-proxy-forgot-both"),
        pytest.param({"blue": _servers((1, "UP"), (1, "UP"))["blue"]}, "blue", id="a-slot-the-proxy-does-not-know"),
        pytest.param(None, "blue", id="no-answer"),
    ],
)
def test_which_of_two_slots_is_live(servers: dict[str, ServerStats] | None, live: str) -> None:
    assert live_slot({"blue": EARLY, "green": LATE}, servers) == live


def test_what_runs_reads_back_by_tag_and_ref() -> None:
    pinned = _container("web-blue", tag=f"1.0.0-abcdef123456@{DIGEST}")
    assert (running_tag(pinned), running_ref(pinned)) == ("1.0.0-abcdef123456", f"1.0.0-abcdef123456@{DIGEST}")
    assert (running_tag(None), running_ref(None)) == (None, None)
    site = Site(web={"blue": pinned}, cron=None, proxy=None, legacy=None, live="blue")
    assert (site.tag("green"), site.ref(None), site.live_ref) == (None, None, f"1.0.0-abcdef123456@{DIGEST}")

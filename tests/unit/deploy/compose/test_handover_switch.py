"""Recording a final switch, and taking a leftover slot out of rotation before it is removed (fakes)."""

import re
from types import SimpleNamespace
from typing import Any

import pytest

from delivery.config.settings import load_config
from delivery.deploy.compose import handover as deploy_module
from delivery.deploy.compose import steps
from delivery.deploy.compose.handover import record_switch
from delivery.deploy.compose.report import DeployReport
from delivery.deploy.compose.state import Handover
from delivery.errors import DeliveryError
from delivery.hosts.site import Site
from delivery.reporting import Recorded

IMAGE_ID = "sha256:" + "f" * 64
STAMP = "20261127T175838316172Z"  # record() writes %Y%m%dT%H%M%S%fZ


# -- the history store: one volume per entry ------------------------------------------------------
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # what `docker volume create` accepts


class FakeTarget:
    def __init__(self):
        self.docker, self.config, self.host = object(), type("C", (), {"compose_project": "pc"})(), type("H", (), {"label": "h"})()


def test_a_final_switch_is_recorded_and_a_failure_to_record_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded, said = [], Recorded()
    monkeypatch.setattr(deploy_module, "record", lambda docker, project, kind, tag, image: recorded.append((project, kind, tag, image)))
    report = DeployReport(host="h", image="i", version="B", digest="")
    container = type("Container", (), {"image": IMAGE_ID})()
    record_switch(FakeTarget(), "rollback", "B", container, report, said)
    assert recorded == [("pc", "rollback", "B", IMAGE_ID)] and report.web_live and said.lines == []

    def failing(*args):
        raise DeliveryError("recording the deploy history failed: disk full")

    monkeypatch.setattr(deploy_module, "record", failing)
    report = DeployReport(host="h", image="i", version="B", digest="")
    record_switch(FakeTarget(), "deploy", "B", container, report, said)
    assert report.web_live and said.lines == ["h: warning: B serves, but recording the deploy history failed: disk full; "
                                        "`invoke rollback` does not know it serves"]


# -- a slot left over by an interrupted deploy -------------------------------------------------
class OrderProxy:
    """Records what reaches the proxy, in one list with the removals: the order is the point."""

    def __init__(self, events: list[str], in_flight: list[int]):
        self.events, self.in_flight, self.container = events, in_flight, "proxy-id"

    def set(self, command: str) -> None:
        self.events.append(command)

    def server(self, slot: str) -> Any:
        left = self.in_flight.pop(0) if len(self.in_flight) > 1 else self.in_flight[0]
        self.events.append(f"in flight on {slot}: {left}")
        return SimpleNamespace(in_flight=left)

    def wait(self, timeout: float, ready: Any) -> bool:
        self.events.append(f"wait up to {timeout:g}s")
        while not ready():
            pass
        return True


class OrderPort:
    """The docker port of a handover, as far as taking out the free slot goes: removals join the proxy's events."""

    def __init__(self, proxy: OrderProxy) -> None:
        self.proxy = proxy

    def remove(self, service: str, tags_: dict[str, str | None]) -> None:
        self.proxy.events.append(f"remove {service}")


class Said:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def step(self, message: str) -> None:
        self.events.append(f"say {message}")


def _web() -> Any:
    return SimpleNamespace(config=SimpleNamespace(image="localhost:5000/production-control:1.0.0-abcdef123456"))


def _take_out(monkeypatch: pytest.MonkeyPatch, web: dict[str, Any], in_flight: list[int]) -> list[str]:
    events: list[str] = []
    site = Site(web=web, cron=None, proxy=None, legacy=None, live="blue")
    report = DeployReport(host="h", image="i", version="B", digest="")
    h = Handover(OrderPort(OrderProxy(events, in_flight)), Said(events), "h", load_config({"drain_timeout": 30}),  # type: ignore[arg-type]
                 site, "B", report)
    steps.take_out_free_slot(h)
    return events


def test_a_leftover_slot_is_held_out_of_rotation_before_it_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _take_out(monkeypatch, {"blue": _web(), "green": _web()}, in_flight=[2, 0])
    assert events == [
        "set server web/green state drain",
        "say h: removing web-green, left by an interrupted deploy (held out of rotation first)",
        "wait up to 30s", "in flight on green: 2", "in flight on green: 0",
        "remove web-green",
    ]


def test_a_free_slot_with_nothing_left_in_it_is_only_held(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _take_out(monkeypatch, {"blue": _web()}, in_flight=[0]) == ["set server web/green state drain"]

"""Keeping the proxy current: started when missing, left alone when current, reloaded for a configuration change,
replaced (after its image is checked) for an image or address change; with fakes for compose and the proxy."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from delivery.config.settings import load_config
from delivery.deploy.compose import proxy_upkeep
from delivery.deploy.compose.proxy import ProxySpec, ServerStats
from delivery.errors import DeliveryError
from delivery.hosts.site import Site
from delivery.reporting import Recorded

WANTED = ProxySpec("haproxy:2.9", ("haproxy", "-f", "cfg"), "0.0.0.0:8000", "global\n")


class FakeProxy:
    def __init__(self, events: list[str], passing: bool = True) -> None:
        self.events, self.passing = events, passing

    def attach(self, container: str) -> None:
        self.events.append(f"attach {container}")

    def reload(self, config: str) -> float:
        self.events.append("reload")
        return 0.4

    def wait(self, timeout: float, ready: Any) -> bool:
        return self.passing and bool(ready())

    def server(self, slot: str) -> ServerStats:
        return ServerStats(slot, "UP", "L7OK", 256, 0, 0, 0, 0)

    def set(self, command: str) -> None:
        self.events.append(f"set {command}")


def _run(monkeypatch: pytest.MonkeyPatch, running: ProxySpec | None, passing: bool = True) -> tuple[list[str], Recorded, Site]:
    events: list[str] = []
    pull = SimpleNamespace(compose=SimpleNamespace(pull=lambda services, quiet: events.append(f"pull {services[0]}")))
    target = SimpleNamespace(host=SimpleNamespace(label="h1"), config=load_config({}), compose=lambda **tags: pull)
    monkeypatch.setattr(proxy_upkeep, "_start_proxy", lambda target, tags_: events.append("up proxy") or SimpleNamespace(id="new-proxy"))
    monkeypatch.setattr(proxy_upkeep, "wanted_proxy", lambda target, tags_: WANTED)
    monkeypatch.setattr(proxy_upkeep, "running_proxy", lambda container, proxy: running)
    monkeypatch.setattr(proxy_upkeep, "check_proxy_image", lambda target, wanted: events.append(f"check {wanted.image}"))
    site = Site(web={}, cron=None, proxy=None if running is None else SimpleNamespace(id="old-proxy"), legacy=None,  # type: ignore[arg-type]
                live="blue")
    said = Recorded()
    proxy_upkeep.ensure_proxy(target, site, {}, said, FakeProxy(events, passing))  # type: ignore[arg-type]
    return events, said, site


def test_a_missing_proxy_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    events, said, site = _run(monkeypatch, None)
    assert events == ["up proxy", "attach new-proxy"] and said.lines == ["h1: starting the proxy"]
    assert site.proxy is not None and site.proxy.id == "new-proxy"


def test_a_current_proxy_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    events, said, _ = _run(monkeypatch, WANTED)
    assert events == ["attach old-proxy"] and said.lines == []


def test_a_configuration_change_is_a_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    events, said, _ = _run(monkeypatch, ProxySpec(WANTED.image, WANTED.command, WANTED.bind, "old\n"))
    assert events == ["attach old-proxy", "reload"]
    assert said.lines == ["h1: proxy configuration changed: reloaded in 0.4s (no connection closed)"]


def test_an_image_change_replaces_the_container_and_keeps_the_live_slot_alone_in_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    events, said, site = _run(monkeypatch, ProxySpec("haproxy:2.8", WANTED.command, WANTED.bind, WANTED.config))
    assert events == ["attach old-proxy", "pull proxy", "check haproxy:2.9", "up proxy", "attach new-proxy",
                      "set set weight web/blue 256; set server web/blue state ready; set server web/green state drain"]
    assert said.lines[0].startswith("h1: proxy image haproxy:2.8 -> haproxy:2.9: replacing the proxy container")


def test_a_new_proxy_that_does_not_pass_its_check_of_the_live_slot_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeliveryError, match="the new proxy on h1 does not pass its check of blue within deploy.health_timeout"):
        _run(monkeypatch, ProxySpec(WANTED.image, WANTED.command, "127.0.0.1:8000", WANTED.config), passing=False)

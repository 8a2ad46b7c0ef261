"""The doctor runbook over a fake builder detection: the builder, what it can build of deploy.platforms, the
problem when it cannot build them all; and the text `invoke doctor` prints of its result."""

from typing import Any

import pytest

from delivery.images.builder import ENGINE, LAYOUT, BuilderInfo
from delivery.ui import text
from delivery.usecases import diagnosing

ENGINE_BUILDER = {
    "name": "default", "driver": "docker", "status": "running", "buildkit": "bundled with Engine 26.1.5",
    "engine": "26.1.5", "image_store": "overlay2", "path": "engine", "reproducible": False,
    "loses": "not byte-reproducible", "to_reproducible": "enable the containerd image store",
}
EMULATING = ("linux/amd64", "linux/amd64/v2", "linux/arm64", "linux/riscv64")


def detected(monkeypatch: pytest.MonkeyPatch, info: BuilderInfo) -> list[Any]:
    """Make `doctor` find `info` on the local engine; what it asked for."""
    asked: list[Any] = []
    monkeypatch.setattr(diagnosing, "connect", lambda host: asked.append(host) or "client")
    monkeypatch.setattr(diagnosing, "detect", lambda docker, host: info if docker == "client" else pytest.fail("another client"))
    return asked


def test_doctor_reports_a_layout_builder_that_builds_every_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    info = BuilderInfo("ci", "docker-container", "running", "v0.18.2", "28.0.1", "containerd", LAYOUT, "linux/amd64", EMULATING)
    asked = detected(monkeypatch, info)
    result = diagnosing.doctor({"registry": "reg:5000", "platforms": "linux/amd64,linux/arm64"})
    assert [host.kind for host in asked] == ["local"]
    assert result == {"builder": info.as_dict(), "registry": "reg:5000", "platforms": ["linux/amd64", "linux/arm64"],
                      "buildable": ["linux/amd64", "linux/arm64"], "platforms_problem": None}


def test_doctor_names_what_the_classic_store_cannot_build_without_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    info = BuilderInfo("default", "docker", "running", "bundled with Engine 26.1.5", "26.1.5", "overlay2", ENGINE, "linux/amd64", EMULATING)
    detected(monkeypatch, info)
    result = diagnosing.doctor({"platforms": "linux/amd64,linux/arm64"})
    assert result["buildable"] == ["linux/amd64"] and result["builder"]["reproducible"] is False
    problem = result["platforms_problem"]
    assert problem is not None and "holds one platform per image" in problem and "\n" not in problem


def test_format_doctor_engine_path_names_the_loss_and_the_fix() -> None:
    assert text.format_doctor({"builder": ENGINE_BUILDER, "registry": "localhost:5000"}) == "\n".join([
        "builder       default (docker driver, running)",
        "BuildKit      bundled with Engine 26.1.5",
        "engine        Docker Engine 26.1.5, overlay2 image store",
        "build path    engine: built into the engine, pushed with docker push",
        "loses         not byte-reproducible",
        "reproducible  enable the containerd image store",
        "registry      localhost:5000",
    ])


def test_format_doctor_layout_path() -> None:
    builder = {**ENGINE_BUILDER, "driver": "docker-container", "name": "ci", "path": "layout", "reproducible": True,
               "loses": None, "to_reproducible": None, "buildkit": "v0.18.2"}
    shown = text.format_doctor({"builder": builder, "registry": "r:5000"})
    assert "build path    layout: reproducible OCI layout" in shown
    assert "loses" not in shown and "reproducible  " not in shown

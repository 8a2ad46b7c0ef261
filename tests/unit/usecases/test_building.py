"""The build-deps runbook (delivery/usecases/building.py) over faked steps: build, SBOM, guard and publish in order,
the rebuild without cache when a cached build has older Debian packages, and a refresh that has nothing to push."""

import json
from pathlib import Path
from typing import Any

import pytest

from delivery.images import build
from delivery.images.base import BaseImage
from delivery.reporting import Recorded
from delivery.supply import refresh as refreshing
from delivery.usecases import building

HASH = "abcdef123456"
BASE = BaseImage("python:3.12-slim-bookworm", "sha256:" + "b" * 64)
PREVIOUS = f"deps-1.0.0-{HASH}"


class FakeRegistry:
    def digest(self, repository: str, reference: str) -> str:
        return f"sha256:registry-{reference}"


class FakeInfo:
    path = "layout"

    def summary(self) -> str:
        return "builder default"


class FakeProject:
    def __init__(self, root: Path) -> None:
        self.lock_path = root / "requirements.lock"
        self.lock_path.write_text("fastapi==1.0\n")
        self.deps_version = "1.0.0"


class Steps:
    """Every step the runbook takes, in order, faked: `older` makes the guard refuse the first cached build."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, downgrades: list[str] | None = None, identical: bool = False) -> None:
        self.calls: list[str] = []
        self.downgrades = downgrades or []
        self.identical = identical
        self.report = Recorded()
        monkeypatch.setattr(building, "REPORT", self.report)
        monkeypatch.setattr(building, "login", lambda config, docker: None)
        monkeypatch.setattr(build, "deps_plan", self.plan)
        monkeypatch.setattr(build, "build", self.build)
        monkeypatch.setattr(building.sbom, "make_for", lambda built, base, lock, report: self.record("sbom", '{"components": []}'))
        monkeypatch.setattr(building.sbom, "publish_for", lambda registry, built, text, report: self.record(f"push sbom {built.tag}"))
        monkeypatch.setattr(building, "publish", lambda docker, registry, built, report: self.record(f"push {built.tag}", "sha256:pushed"))
        monkeypatch.setattr(refreshing, "debian_against", self.debian_against)
        monkeypatch.setattr(refreshing, "compare_with", self.compare_with)

    def record(self, call: str, value: Any = None) -> Any:
        self.calls.append(call)
        return value

    def plan(self, project: Any, config: Any, base: BaseImage, version: str | None) -> build.BuildPlan:
        return build.BuildPlan("deps", f"localhost:5000/production-control-deps:deps-{version}-{HASH}", Path("."), Path("Dockerfile"))

    def build(self, docker: Any, plan: build.BuildPlan, path: str, workdir: Path, report: Any, use_cache: bool = True,
              export: bool = False) -> build.Built:
        self.calls.append(f"build {plan.tag} cache={use_cache} export={export}")
        layout = workdir / "layout"
        layout.mkdir()
        (layout / "index.json").write_text(json.dumps({"manifests": [{"digest": "sha256:built", "size": 1, "mediaType": "m"}]}))
        return build.Built(plan, path, layout)

    def debian_against(self, registry: Any, previous: str, text: str) -> dict[str, Any]:
        downgrades, self.downgrades = self.downgrades, []  # the build without cache has current packages
        return {"compared_with": previous, "debian_changes": ["libssl3 3.0.1 -> 3.0.2"], "debian_downgrades": downgrades}

    def compare_with(self, registry: Any, previous: str, image: str, layout: Path, text: str) -> dict[str, Any]:
        return {"compared_with": previous, "debian_changes": [], "debian_downgrades": [], "identical": self.identical,
                "changed_layers": 0 if self.identical else 1, "predicted_pull": []}


def job(tmp_path: Path, current: str | None = "1.0.0", pushed: tuple[str, ...] = (PREVIOUS,)) -> building.DepsJob:
    return building.DepsJob(config=None, project=FakeProject(tmp_path), docker=None, info=FakeInfo(),  # type: ignore[arg-type]
                            registry=FakeRegistry(), base=BASE, pushed=list(pushed), content_hash=HASH,  # type: ignore[arg-type]
                            current=current)


def test_a_deps_image_the_registry_has_is_not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch)
    monkeypatch.setattr(building, "deps_job", lambda config, project: job(tmp_path))
    result = building.deps_build(None, None, building.DepsRequest())  # type: ignore[arg-type]
    assert result == {"image": f"localhost:5000/production-control-deps:{PREVIOUS}", "base": BASE.pinned,
                      "digest": f"sha256:registry-{PREVIOUS}", "built": False}
    assert steps.calls == []
    assert "is already in the registry: nothing to build (--force rebuilds it)" in steps.report.lines[0]


def test_build_then_sbom_then_guard_then_the_sbom_and_image_are_pushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch)
    monkeypatch.setattr(building, "deps_job", lambda config, project: job(tmp_path))
    result = building.deps_build(None, None, building.DepsRequest(force=True))  # type: ignore[arg-type]
    assert steps.calls == [f"build {PREVIOUS} cache=True export=True", "sbom", f"push sbom {PREVIOUS}", f"push {PREVIOUS}"]
    assert result["digest"] == "sha256:pushed" and result["built"] is True and result["sbom"] == f"{PREVIOUS}.sbom"
    assert result["compared_with"] == PREVIOUS and result["debian_changes"] == ["libssl3 3.0.1 -> 3.0.2"]
    assert any(line.startswith(f"the OS layer changed since {PREVIOUS}: 1 Debian package(s)") for line in steps.report.lines)


def test_a_cached_build_with_older_debian_packages_is_built_again_without_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch, downgrades=["libc6 2.36-9+deb12u9 -> 2.36-9+deb12u8"])
    monkeypatch.setattr(building, "deps_job", lambda config, project: job(tmp_path))
    result = building.deps_build(None, None, building.DepsRequest(force=True))  # type: ignore[arg-type]
    assert steps.calls == [f"build {PREVIOUS} cache=True export=True", "sbom",  # refused: nothing pushed
                           f"build {PREVIOUS} cache=False export=True", "sbom", f"push sbom {PREVIOUS}", f"push {PREVIOUS}"]
    assert result["debian_downgrades"] == [] and result["built"] is True
    assert any("building again without cache" in line for line in steps.report.lines)


def test_without_cache_older_debian_packages_fail_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch, downgrades=["libc6 2.36-9+deb12u9 -> 2.36-9+deb12u8"])
    monkeypatch.setattr(building, "deps_job", lambda config, project: job(tmp_path))
    with pytest.raises(refreshing.OlderDebianPackages, match="without cache"):
        building.deps_build(None, None, building.DepsRequest(force=True, use_cache=False))  # type: ignore[arg-type]
    assert steps.calls == [f"build {PREVIOUS} cache=False export=True", "sbom"]


def test_a_refresh_with_the_same_layers_pushes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch, identical=True)
    result = building.refresh_deps(job(tmp_path))
    assert steps.calls == [f"build deps-1.0.1-{HASH} cache=False export=True", "sbom"]
    assert result["image"] == f"localhost:5000/production-control-deps:{PREVIOUS}"  # the current one
    assert result["digest"] == f"sha256:registry-{PREVIOUS}" and result["built"] is False and result["identical"] is True
    assert f"the rebuilt image has the layers of {PREVIOUS}: nothing to push" in steps.report.lines


def test_a_refresh_that_differs_is_pushed_as_the_next_patch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch, identical=False)
    result = building.refresh_deps(job(tmp_path))
    tag = f"deps-1.0.1-{HASH}"
    assert steps.calls == [f"build {tag} cache=False export=True", "sbom", f"push sbom {tag}", f"push {tag}"]
    assert result["digest"] == "sha256:pushed" and result["built"] is True and result["sbom"] == f"{tag}.sbom"


def test_a_refresh_on_a_new_base_with_nothing_before_it_is_pushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(monkeypatch)
    monkeypatch.setattr(refreshing, "previous_for_base", lambda registry, tags, name: None)
    result = building.refresh_deps(job(tmp_path, current=None, pushed=()))
    tag = f"deps-1.0.0-{HASH}"
    assert steps.calls == [f"build {tag} cache=False export=True", "sbom", f"push sbom {tag}", f"push {tag}"]
    assert result["base_changed"] is True and result["compared_with"] is None and result["built"] is True
    assert f"no earlier deps image on {BASE.name} to compare with: pushing localhost:5000/production-control-deps:{tag}" in steps.report.lines

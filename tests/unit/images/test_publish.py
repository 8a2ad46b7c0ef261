"""Build then publish (delivery/images/build.py, publish.py) over a fake docker CLI and registry: the layout path
pushes the build's OCI layout, the engine path pulls the base first and pushes from the engine; nothing is pushed by build."""

import json
from pathlib import Path
from typing import Any

from delivery.images import build
from delivery.images.builder import ENGINE, LAYOUT
from delivery.images.publish import publish
from delivery.reporting import Recorded

IMAGE = "localhost:5000/acme/production-control:1.0.0-0123456789ab"


class FakeImages:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def pull(self, image: str, quiet: bool = False) -> None:
        self.calls.append(f"pull {image}")

    def push(self, image: str, quiet: bool = False) -> None:
        self.calls.append(f"push {image}")

    def save(self, image: str, output: Path) -> None:
        self.calls.append(f"save {image}")
        import io
        import tarfile
        with tarfile.open(output, "w") as tar:
            data = json.dumps({"manifests": [{"digest": "sha256:saved", "size": 2, "mediaType": "m"}]}).encode()
            info = tarfile.TarInfo("index.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


class FakeBuildx:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def build(self, context: Path, **options: Any) -> list[str]:
        self.calls.append("build " + ("load" if options.get("load") else "oci"))
        output = options.get("output")
        if output:
            layout = Path(output["dest"])
            layout.mkdir(parents=True)
            (layout / "index.json").write_text(json.dumps({"manifests": [{"digest": "sha256:layout", "size": 3, "mediaType": "m"}]}))
        return ["#1 [runtime 1/1] COPY . ."]


class FakeDocker:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.image = FakeImages(self.calls)
        self.buildx = FakeBuildx(self.calls)


class FakeRegistry:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def push_layout(self, layout: Path, repository: str, tag: str, report: Any) -> str:
        self.calls.append(f"push_layout {repository}:{tag}")
        return "sha256:layout"

    def digest(self, repository: str, reference: str) -> str:
        return f"sha256:of-{repository}:{reference}"


def plan(root: Path, base_image: str | None = None) -> build.BuildPlan:
    (root / "Dockerfile").write_text("FROM scratch\n")
    return build.BuildPlan("runtime", IMAGE, root, root / "Dockerfile", base_image=base_image)


def test_the_layout_path_builds_a_layout_and_publish_pushes_it(tmp_path: Path) -> None:
    docker, report = FakeDocker(), Recorded()
    registry = FakeRegistry(docker.calls)
    (tmp_path / "src").mkdir()
    with build.workspace() as workdir:
        built = build.build(docker, plan(tmp_path / "src"), LAYOUT, workdir, report)  # type: ignore[arg-type]
        assert docker.calls == ["build oci"]  # nothing pushed yet
        assert (built.tag, built.repository, built.digest, built.platforms) == ("1.0.0-0123456789ab", "production-control",
                                                                                "sha256:layout", ("linux/amd64",))
        assert publish(docker, registry, built, report) == "sha256:layout"  # type: ignore[arg-type]
    assert docker.calls == ["build oci", "push_layout production-control:1.0.0-0123456789ab"]
    assert report.lines == ["#1 [runtime 1/1] COPY . .", f"pushing {IMAGE}"]


def test_the_engine_path_pulls_the_base_builds_into_the_engine_and_pushes_from_it(tmp_path: Path) -> None:
    docker, report = FakeDocker(), Recorded()
    (tmp_path / "src").mkdir()
    with build.workspace() as workdir:
        built = build.build(docker, plan(tmp_path / "src", "localhost:5000/deps:1"), ENGINE, workdir, report)  # type: ignore[arg-type]
        assert built.layout is None  # not exported: nothing reads it before the push
        digest = publish(docker, FakeRegistry(docker.calls), built, report)  # type: ignore[arg-type]
    assert docker.calls == ["pull localhost:5000/deps:1", "build load", f"push {IMAGE}"]
    assert digest == "sha256:of-production-control:1.0.0-0123456789ab"
    assert report.lines[0] == "pulling localhost:5000/deps:1 into the engine" and report.lines[-1] == f"pushing {IMAGE} with docker push"


def test_the_engine_path_exports_the_image_for_what_reads_it_before_the_push(tmp_path: Path) -> None:
    docker = FakeDocker()
    (tmp_path / "src").mkdir()
    with build.workspace() as workdir:
        built = build.build(docker, plan(tmp_path / "src"), ENGINE, workdir, Recorded(), export=True)  # type: ignore[arg-type]
        assert built.layout is not None and built.digest == "sha256:saved"
    assert docker.calls == ["build load", f"save {IMAGE}"]

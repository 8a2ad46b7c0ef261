"""The engine reads every caller shares (delivery/docker/engine.py): `docker info` as JSON, the image store it names,
and the layers of every image on it, over a fake CLI."""

import json
from types import SimpleNamespace
from typing import Any

import pytest

from delivery.docker import engine


def test_read_info_is_the_engines_json(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def run(argv: list[str]) -> str:
        seen.append(argv)
        return json.dumps({"Swarm": {"NodeID": "n1"}, "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]})

    monkeypatch.setattr(engine, "run", run)
    info = engine.read_info(SimpleNamespace(docker_cmd=["docker", "--host", "ssh://a"]))  # type: ignore[arg-type]
    assert seen == [["docker", "--host", "ssh://a", "info", "--format", "{{json .}}"]]
    assert info["Swarm"]["NodeID"] == "n1" and engine.image_store(info["DriverStatus"]) == "containerd"


def test_image_layers_lists_id_repo_digests_and_diff_ids_of_every_image() -> None:
    images: list[Any] = [
        SimpleNamespace(id="sha256:a", repo_digests=["r/app@sha256:d"], root_fs=SimpleNamespace(layers=["sha256:l1"])),
        SimpleNamespace(id="sha256:b", repo_digests=None, root_fs=SimpleNamespace(layers=None)),
    ]
    docker = SimpleNamespace(image=SimpleNamespace(list=lambda: images))
    assert engine.image_layers(docker) == [("sha256:a", ["r/app@sha256:d"], ["sha256:l1"]), ("sha256:b", [], [])]  # type: ignore[arg-type]

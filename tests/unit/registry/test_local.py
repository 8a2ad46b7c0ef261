"""The loopback registry both the toolkit and the test bed start (delivery/registry/local.py): its config, and
starting it, with a fake process, never a real registry."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from delivery.registry import client, local
from delivery.registry.local import NotStarted, RegistryServer

ROOT = Path(__file__).resolve().parents[3]


def test_it_imports_only_the_standard_library() -> None:
    # The test bed imports it with the system python3, before the venv exists.
    tree = ast.parse((ROOT / "delivery" / "registry" / "local.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        else:
            continue
        assert all(n.split(".")[0] in sys.stdlib_module_names or n == "__future__" for n in names), names


def test_nothing_in_the_toolkit_imports_the_test_bed() -> None:
    for path in (ROOT / "delivery").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] != "dockerbed", path
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "dockerbed" for a in node.names), path


def test_its_files_are_under_its_root() -> None:
    server = RegistryServer(Path("/st/r"), "127.0.0.1:5000")
    assert (server.config_file, server.log, server.pid_file, server.storage) == (
        Path("/st/r/config.yml"), Path("/st/r/registry.log"), Path("/st/r/pid"), Path("/st/r/data"))
    assert server.argv() == ["docker-registry", "serve", "/st/r/config.yml"]
    assert server.url == "http://127.0.0.1:5000"


class FakeProcess:
    def __init__(self, returncode: int | None) -> None:
        self.returncode = returncode
        self.pid = 4242

    def poll(self) -> int | None:
        return self.returncode


def test_a_registry_that_exits_is_reported_with_its_log_line(tmp_path: Path) -> None:
    log = tmp_path / "registry.log"
    log.write_text("starting\nlisten tcp 127.0.0.1:5000: bind: address already in use\n")
    process: subprocess.Popen[bytes] = FakeProcess(1)  # type: ignore[assignment]
    with pytest.raises(NotStarted, match=r"docker-registry exited \(1\): listen tcp .* address already in use \(log: "):
        local.wait_until_up("docker-registry", lambda: False, process, log, timeout=5)


def test_one_that_answers_is_not_started_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "answers", lambda server, cafile=None: True)
    monkeypatch.setattr(local, "spawn", lambda argv, log: pytest.fail("spawned"))
    assert local.start(RegistryServer(tmp_path, "127.0.0.1:5000")) is None
    assert not (tmp_path / "config.yml").exists()


def test_start_writes_the_config_and_pid_then_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = iter([False, True])  # down before the start, up on the first poll
    monkeypatch.setattr(local, "answers", lambda server, cafile=None: next(calls))
    monkeypatch.setattr(local, "spawn", lambda argv, log: FakeProcess(None))
    server = RegistryServer(tmp_path, "127.0.0.1:5000")
    assert local.start(server) is not None
    assert server.config_file.read_text() == server.config()
    assert server.pid_file.read_text() == "4242\n" and server.storage.is_dir()


def test_invoke_registry_starts_only_a_loopback_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client.shutil, "which", lambda name: "/usr/bin/docker-registry")
    with pytest.raises(client.DeliveryError, match="only a loopback registry can be started"):
        client.start_local_registry("registry.example.com:5000")
    started: list[RegistryServer] = []
    monkeypatch.setattr(client, "start_server", lambda server, timeout: started.append(server))
    assert "docker-registry in the background" in client.start_local_registry("localhost:5123")
    assert started[0].address == "127.0.0.1:5123"
    assert started[0].root.name == "production-control-registry-5123"


def test_a_registry_that_does_not_start_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client.shutil, "which", lambda name: "/usr/bin/docker-registry")

    def fail(server: RegistryServer, timeout: float) -> None:
        raise NotStarted("docker-registry on 127.0.0.1:5123 exited (1): boom (log: /x)")

    monkeypatch.setattr(client, "start_server", fail)
    with pytest.raises(client.DeliveryError, match=r"^the local registry did not start: docker-registry on .*boom"):
        client.start_local_registry("127.0.0.1:5123")

"""The test-bed library's pure parts: dockerd command lines, registry configs, the CLI's arguments."""

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dockerbed import __main__ as cli
from dockerbed import bridges, packages, worktree
from dockerbed.engines import Engine
from dockerbed.registries import Registry, TokenAuth

ROOT = Path(__file__).resolve().parents[3]


def test_a_server_engine_is_confined_to_its_root_and_bridge() -> None:
    engine = Engine(Path("/st/server"), "overlay2", bridge="pctb0")
    assert engine.argv() == [
        "dockerd", "--config-file", "/st/server/daemon.json", "--data-root", "/st/server/data",
        "--exec-root", "/st/server/exec", "-H", "unix:///st/server/docker.sock", "--pidfile", "/st/server/docker.pid",
        "--bridge", "pctb0",
    ]  # fmt: skip
    assert engine.daemon_config() == {"storage-driver": "overlay2", "features": {"containerd-snapshotter": False}}


def test_the_system_engine_keeps_dockerds_defaults() -> None:
    engine = Engine(Path("/st/builder"), "containerd", system=True)
    assert engine.argv() == ["dockerd", "--config-file", "/st/builder/daemon.json"]
    assert (engine.host, engine.pid_file) == ("unix:///var/run/docker.sock", Path("/var/run/docker.pid"))
    assert engine.daemon_config() == {"features": {"containerd-snapshotter": True}}


def test_iptables_and_forwarding_are_switched_off_only_when_asked() -> None:
    quiet = Engine(Path("/r"), bridge="b", iptables=False, ip_forward=False).argv()
    assert quiet[-3:] == ["--iptables=false", "--ip6tables=false", "--ip-forward=false"]
    assert not any(arg.startswith(("--iptables", "--ip-forward")) for arg in Engine(Path("/r"), bridge="b").argv())


def test_no_engine_is_started_with_bridge_none() -> None:
    # dockerd --bridge none deletes the host's docker0, the builder engine's bridge.
    assert "--bridge" not in Engine(Path("/r")).argv()


def test_a_node_engine_runs_in_its_namespace_with_a_private_run_docker_and_hostname() -> None:
    argv = Engine(Path("/sw/n1"), netns="pcsw-n1", hostname="swarm-node1").argv()
    assert argv[:8] == ["nsenter", "--net=/run/netns/pcsw-n1", "unshare", "--mount", "--uts", "--propagation", "private", "sh"]
    script = argv[-1]
    assert script.startswith("hostname swarm-node1; mount --bind /sw/n1/run-docker /run/docker; exec dockerd ")
    assert "-H unix:///sw/n1/docker.sock" in script and "--bridge" not in script


def test_an_unknown_store_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown image store 'btrfs'"):
        Engine(Path("/r"), "btrfs")


def test_a_plain_registry_config_logs_access_and_allows_deletes() -> None:
    config = Registry(Path("/st/registry"), "127.0.0.1:5000").config()
    assert config == (
        "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
        "storage:\n  filesystem:\n    rootdirectory: /st/registry/data\n  delete:\n    enabled: true\n"
        "http:\n  addr: 127.0.0.1:5000\n"
    )


def test_registry_auth_and_tls_sections() -> None:
    tls = Registry(Path("/r"), "10.0.0.1:5443", Path("/t/reg.crt"), Path("/t/reg.key"), htpasswd=Path("/r/htpasswd"))
    assert tls.url == "https://10.0.0.1:5443"
    assert tls.config().endswith(
        "auth:\n  htpasswd:\n    realm: production-control-test\n    path: /r/htpasswd\n"
        "http:\n  addr: 10.0.0.1:5443\n  tls:\n    certificate: /t/reg.crt\n    key: /t/reg.key\n"
    )
    token = Registry(Path("/r"), "127.0.0.1:1", token=TokenAuth("http://127.0.0.1:2/token", "svc", "iss", Path("/i.crt")))
    assert "auth:\n  token:\n    realm: http://127.0.0.1:2/token\n    service: svc\n    issuer: iss\n    rootcertbundle: /i.crt\n" in token.config()
    assert token.url == "http://127.0.0.1:1"


def test_the_cli_reads_namespaces_with_the_bridge_as_gateway() -> None:
    args = cli.parser().parse_args(["netns", "up", "--bridge", "pcsw0", "--cidr", "10.213.30.1/24", "a:ha:10.213.30.11/24"])
    assert cli.namespaces(args) == [bridges.Namespace("a", "ha", "10.213.30.11/24", "10.213.30.1")]
    assert bridges.forward_rule("pcsw0") == ["DOCKER-USER", "-i", "pcsw0", "-o", "pcsw0", "-j", "ACCEPT"]


# Network ids as engines list them (`docker network ls -q --no-trunc`), and the bridges Docker names
# after them: br-<the id's first 12 characters> (libnetwork's bridge driver).
OWNED_ID = "925defad821028aa6cdef159e7c3985f797d96cb65dbb91084ac55d2b766eca4"
GONE_ID = "185aad6a3016157ced7ae0799b5c5cf6d707a742da2d2cb2ff70ee1e8c1fabed"
HOST_BRIDGES = ["docker0", "pctb0", "pcsw0", "br-925defad8210", "br-185aad6a3016"]


def test_a_bridge_whose_network_is_gone_is_an_orphan_and_an_owned_one_is_kept() -> None:
    assert bridges.orphans(HOST_BRIDGES, [OWNED_ID], dockerds=4, engines=4) == ["br-185aad6a3016"]
    assert bridges.orphans(HOST_BRIDGES, [OWNED_ID, GONE_ID], dockerds=4, engines=4) == []


def test_only_dockers_br_bridges_can_be_orphans() -> None:
    # docker0, the test bed's own bridges and the swarm's are owned by no network id, and stay.
    assert bridges.orphans(["docker0", "pctb0", "pcsw0", "pcfault0", "virbr0"], [], dockerds=1, engines=4) == []


def test_a_network_owns_the_bridge_named_after_the_first_12_characters_of_its_id() -> None:
    assert bridges.orphans(["br-925defad8210"], [OWNED_ID[:12]], dockerds=4, engines=4) == []  # as `ls -q` prints ids
    # Another stretch of the id is not its bridge's name.
    assert bridges.orphans(["br-925defad821", "br-25defad82102"], [OWNED_ID], 4, 4) == ["br-25defad82102", "br-925defad821"]


def test_nothing_is_an_orphan_while_another_engine_than_the_test_beds_runs() -> None:
    # A throwaway engine's networks are not listed: its live bridges would look orphaned.
    assert bridges.orphans(HOST_BRIDGES, [OWNED_ID], dockerds=5, engines=4) == []
    assert bridges.orphans(HOST_BRIDGES, [OWNED_ID], dockerds=2, engines=2) == ["br-185aad6a3016"]


def test_link_names_are_read_from_ip_link_output() -> None:
    output = (
        "5: docker0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN mode DEFAULT group default "
        "\\    link/ether 02:42:a4:cb:8f:82 brd ff:ff:ff:ff:ff:ff\n"
        "785: br-185aad6a3016: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN\n"
        "9: pcsw-h1@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master pcsw0\n"
    )
    assert bridges.names(output) == ["docker0", "br-185aad6a3016", "pcsw-h1"]


def test_the_cli_prunes_bridges_of_each_engine_given() -> None:
    args = cli.parser().parse_args(["bridges", "prune-orphans", "--socket", "/var/run/docker.sock", "--socket", "/st/s.sock"])
    assert (args.sockets, args.run) == (["/var/run/docker.sock", "/st/s.sock"], cli.bridges_prune_orphans)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["bridges", "prune-orphans"])  # no engine: every br- bridge would look orphaned


def test_the_cli_builds_the_engine_scripts_testbed_asks_for() -> None:
    args = cli.parser().parse_args(["engine", "up", "server", "--root", "/st/server", "--bridge", "pctb0", "--cidr",
                                    "10.213.7.1/24", "--store", "containerd"])  # fmt: skip
    assert cli.engine_of(args) == Engine(Path("/st/server"), "containerd", bridge="pctb0")


def test_the_library_imports_only_the_standard_library() -> None:
    # scripts/testbed runs it with the system python3, before the venv exists.
    for path in (ROOT / "dockerbed").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                top = name.split(".")[0]
                shared = name in ("delivery.registry", "delivery.registry.local")  # standard library only (tests/unit/registry)
                assert shared or top == "dockerbed" or top in sys.stdlib_module_names or top == "__future__", f"{path.name}: {name}"


def test_the_library_stays_out_of_the_runtime_image() -> None:
    allowed = [line[1:].strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    assert "dockerbed" not in allowed and "*" in (ROOT / ".dockerignore").read_text().splitlines()


def test_a_clone_holds_the_work_tree_as_it_is_committed(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    git = ("git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@localhost")
    subprocess.run([*git[:3], "init", "--quiet"], check=True)
    (source / ".gitignore").write_text("*.log\n")
    (source / "kept.txt").write_text("committed\n")
    (source / "gone.txt").write_text("deleted later\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "one"], check=True)
    (source / "kept.txt").write_text("edited, not committed\n")
    (source / "gone.txt").unlink()
    (source / "new.txt").write_text("untracked\n")
    (source / "noise.log").write_text("ignored\n")

    clone = worktree.clone(source, tmp_path / "clones" / "repo", "the work tree")

    tracked = subprocess.run(["git", "-C", str(clone), "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(tracked) == [".gitignore", "kept.txt", "new.txt"]
    assert (clone / "kept.txt").read_text() == "edited, not committed\n"
    assert not (clone / "noise.log").exists()
    assert subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True).stdout == ""
    status = subprocess.run(["git", "-C", str(source), "status", "--porcelain"], capture_output=True, text=True).stdout
    assert sorted(status.splitlines()) == [" D gone.txt", " M kept.txt", "?? new.txt"]  # the source is left as it was


# -- the verified Debian packages (dockerbed/packages.py) ---------------------------------------------------
def test_the_verified_file_parses_and_names_every_part_of_the_bed() -> None:
    names = {pin.name for pin in packages.verified()}
    assert {"docker.io", "docker-buildx", "docker-compose", "containerd", "runc", "docker-registry", "skopeo",
            "haproxy", "qemu-user-static"} <= names  # fmt: skip
    assert {pin.suite for pin in packages.verified()} == {"bookworm", "trixie", "proxy-image"}


def test_a_verified_version_still_served_is_pinned_and_a_gone_one_says_what_replaced_it() -> None:
    pins = [packages.Pin("trixie", "docker.io", "26.1.5+dfsg1-9+deb13u1+b1"), packages.Pin("bookworm", "runc", "1.1.5")]
    specs, notes = packages.choose(pins, {"docker.io": ["26.1.5+dfsg1-9+deb13u1+b1"], "runc": ["1.1.6", "1.1.5~rc"]})
    assert specs == ["docker.io=26.1.5+dfsg1-9+deb13u1+b1", "runc"]
    assert notes == ["runc 1.1.5 (verified) is no longer served by Debian bookworm: installing 1.1.6 instead"]


def test_the_report_is_one_line_and_one_more_only_when_versions_differ() -> None:
    pins = [packages.Pin("bookworm", "runc", "1.1.5"), packages.Pin("bookworm", "skopeo", "1.9")]
    assert packages.report(pins, {"runc": "1.1.5", "skopeo": "1.9"}) == ("versions (as verified): runc 1.1.5, skopeo 1.9", None)
    versions, differ = packages.report(pins, {"runc": "1.1.6", "skopeo": None})
    assert versions == "versions: runc 1.1.6, skopeo missing"
    assert differ is not None and differ.startswith(
        "this machine has other versions than the test bed was verified with: runc 1.1.6 (verified: 1.1.5); "
        "skopeo missing (verified: 1.9)")


def test_apt_and_dpkg_output_are_read() -> None:
    madison = ("containerd | 1.6.20~ds1-1+deb12u3 | http://deb.debian.org/debian bookworm/main amd64 Packages\n"
               "containerd | 1.6.20~ds1-1+deb12u2 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n")
    assert packages.madison(madison) == {"containerd": ["1.6.20~ds1-1+deb12u3", "1.6.20~ds1-1+deb12u2"]}
    dpkg = "runc 1.1.5 ii \nskopeo 1.9 rc \n"
    assert packages.dpkg_versions(dpkg, ["runc", "skopeo", "tini"]) == {"runc": "1.1.5", "skopeo": None, "tini": None}


def test_record_rewrites_only_the_versions_that_moved(tmp_path: Path) -> None:
    verified = tmp_path / "verified.txt"
    verified.write_text("# pins\nbookworm runc 1.1.5\nbookworm skopeo 1.9\n")
    assert packages.record({"runc": "1.1.6", "skopeo": "1.9"}, verified) == ["runc 1.1.5 -> 1.1.6"]
    assert verified.read_text() == "# pins\nbookworm runc 1.1.6\nbookworm skopeo 1.9\n"


def test_a_pid_file_left_from_before_a_reboot_names_no_process_of_ours(tmp_path):
    """After a reboot the pid in /var/tmp's pid file may be any process's (CI met dockerd refusing to start
    so): it is neither signalled nor kept; a pid file of a process started with the marker is."""
    from dockerbed import processes

    pid_file, marker = tmp_path / "docker.pid", tmp_path / "daemon.json"
    pid_file.write_text(f"{os.getpid()}\n")  # alive, but pytest's command line does not name the marker
    assert processes.owned_pid(pid_file, marker) is None
    processes.stop(pid_file, marker, timeout=0.1)  # must not signal pytest
    processes.clear_stale(pid_file, marker)
    assert not pid_file.exists()

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(marker)])
    try:
        pid_file.write_text(f"{child.pid}\n")
        assert processes.owned_pid(pid_file, marker) == child.pid
        processes.clear_stale(pid_file, marker)
        assert pid_file.exists()
        processes.stop(pid_file, marker, timeout=5)
        assert child.wait(timeout=5) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()

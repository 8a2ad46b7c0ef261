"""The swarm tests' bed: `scripts/testbed swarm up` (three engines in network namespaces, one swarm,
a TLS registry on the bridge address), a clone of the repository whose tasks build into that
registry and deploy the stack through the manager, and the releases built from it (once per session).

The bed is started once per session; when this session started it, it stops it at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.release.pullreport import Access, parse_access_log
from dockerbed.engines import Engine
from tests.integration.support.faults_helpers import RELEASES, Release, RunningTask, _ballast
from tests.integration.support.tasks_helpers import Clone, TaskRun, healthz, wait_for
from tests.integration.support.testbed import REPO_ROOT, Testbed, parse_env_script

SCRIPT = REPO_ROOT / "scripts" / "testbed"
# Two releases with a new 24 MB layer each (random bytes): one rolled out plain, one with pre-pull.
SWARM_RELEASES = {**RELEASES, "third": RELEASES["second"], "layer24-a": _ballast(24), "layer24-b": _ballast(24)}
RELEASE_NAMES = ("good", "second", "third", "crash", "slow", "layer24-a", "layer24-b")
PORT = 8000  # the proxy's host-mode port, in each node's own network namespace
COMPOSE_PORT = 8001  # the compose project's proxy beside the stack, on the same nodes


def testbed_swarm(command: str) -> str:
    result = subprocess.run([str(SCRIPT), "swarm", command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"scripts/testbed swarm {command} failed:\n{result.stderr}"
    return result.stdout


@dataclass
class SwarmBed:
    env: dict[str, str]
    clone: Clone
    tmp: Path
    started_here: bool
    stack: str = "production-control"
    base_commit: str = ""
    releases: dict[str, Release] = field(default_factory=dict)

    @classmethod
    def create(cls, testbed: Testbed) -> SwarmBed:
        manager_answers = subprocess.run(["docker", "-H", parse_env_script(testbed_swarm("env"))["TESTBED_SWARM_MANAGER"], "info"],
                                         capture_output=True).returncode == 0
        testbed_swarm("up")
        env = parse_env_script(testbed_swarm("env"))
        tmp = Path(tempfile.mkdtemp(prefix="pcs-", dir="/tmp"))
        clone = Clone.create(tmp / "repo", testbed)
        bed = cls(env, clone, tmp, started_here=not manager_answers)
        bed.base_commit = clone.head()
        clone.env.update({
            "INVOKE_DEPLOY_REGISTRY": env["TESTBED_SWARM_REGISTRY"],
            "INVOKE_DEPLOY_MODE": "swarm",
            "INVOKE_DEPLOY_HOSTS": env["TESTBED_SWARM_MANAGER"],
            "INVOKE_DEPLOY_NODES": env["TESTBED_SWARM_NODES"],
            "INVOKE_DEPLOY_PROXY_IMAGE": env["TESTBED_SWARM_PROXY_IMAGE"],
            "INVOKE_DEPLOY_HEALTH_TIMEOUT": "30",
            "INVOKE_DEPLOY_MONITOR": "5",
            "INVOKE_DEPLOY_PULL_TIMEOUT": "120",
            "SSL_CERT_FILE": env["TESTBED_SWARM_CA_BUNDLE"],  # the tasks' registry client trusts the bed's CA
        })
        return bed

    def close(self) -> None:
        try:
            if self.started_here:
                testbed_swarm("down")
            else:
                subprocess.run(["docker", "-H", self.manager_host, "stack", "rm", self.stack], capture_output=True)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the swarm ----------------------------------------------------------------------------
    @property
    def manager_host(self) -> str:
        return self.env["TESTBED_SWARM_MANAGER"]

    @property
    def manager(self) -> DockerClient:
        return DockerClient(host=self.manager_host)

    @property
    def node_hosts(self) -> list[str]:
        return self.env["TESTBED_SWARM_NODES"].split(",")

    @property
    def node_addresses(self) -> list[str]:
        return self.env["TESTBED_SWARM_NODE_ADDRESSES"].split(",")

    @property
    def registry_log(self) -> Path:
        return Path(self.env["TESTBED_SWARM_REGISTRY_LOG"])

    def node_pid(self, k: int) -> int:
        swarm = Path(self.env["TESTBED_SWARM_CA_BUNDLE"]).parents[1]
        return int(Engine(swarm / f"n{k}").pid_file.read_text())

    def kill_node_engine(self, k: int) -> None:
        """SIGKILL the engine of node k (as a crash would); `restart_nodes` brings it back."""
        os.kill(self.node_pid(k), signal.SIGKILL)

    def restart_nodes(self) -> None:
        testbed_swarm("up")  # idempotent: starts the engines that are not running; they rejoin the swarm

        def all_ready() -> bool:
            out = subprocess.run(["docker", "-H", self.manager_host, "node", "ls", "--format", "{{.Status}}"],
                                 capture_output=True, text=True).stdout.split()
            return len(out) == 3 and set(out) == {"Ready"}

        wait_for("every swarm node Ready", all_ready, timeout=90, interval=1)

    @contextmanager
    def registry_blocked(self, k: int) -> Iterator[None]:
        """Node k's connections to the registry refused (a firewall rule in its network namespace)."""
        host, port = self.env["TESTBED_SWARM_REGISTRY"].rsplit(":", 1)
        rule = ["OUTPUT", "-d", host, "-p", "tcp", "--dport", port, "-j", "REJECT"]
        netns = self.env["TESTBED_SWARM_NODE_NETNS"].split(",")[k - 1]
        subprocess.run(["ip", "netns", "exec", netns, "iptables", "-I", *rule], check=True)
        try:
            yield
        finally:
            subprocess.run(["ip", "netns", "exec", netns, "iptables", "-D", *rule], check=True)

    def remove_compose_project(self, project: str) -> None:
        """The containers, networks and volumes a compose deploy left on the nodes."""
        for host in self.node_hosts:
            node = DockerClient(host=host)
            with suppress(DockerException):
                containers = node.container.list(all=True, filters=[("label", f"com.docker.compose.project={project}")])
                if containers:
                    node.container.remove(containers, force=True, volumes=True)
                for network in node.network.list(filters=[("label", f"com.docker.compose.project={project}")]):
                    node.network.remove(network)
                for volume in node.volume.list(filters=[("label", f"com.docker.compose.project={project}")]):
                    node.volume.remove(volume)

    # -- tasks --------------------------------------------------------------------------------
    def invoke(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600) -> TaskRun:
        return self.clone.invoke(*args, env=env, timeout=timeout)

    def start_invoke(self, *args: str, env: Mapping[str, str] | None = None) -> RunningTask:
        return RunningTask(self.clone, args, env or {})

    def release(self, name: str) -> Release:
        """Release `name` of faults_helpers.RELEASES; all of RELEASE_NAMES are built and pushed at first use."""
        if not self.releases:
            self.build_releases()
        return self.releases[name]

    def build_releases(self) -> None:
        """The deps image and every release the swarm tests use, built once."""
        run = self.invoke("build-deps", "--json", timeout=1200)
        assert run.returncode == 0, run.describe()
        for name in RELEASE_NAMES:
            try:
                SWARM_RELEASES[name](self.clone.path)
                commit = self.clone.commit(f"swarm test release: {name}")
                run = self.invoke("build-app", "--json")
                assert run.returncode == 0, run.describe()
            finally:
                self.clone.reset_to(self.base_commit)
            result = run.json()
            self.releases[name] = Release(name, result["tag"], result["digest"], commit)

    def deploy(self, release: Release, *flags: str, env: Mapping[str, str] | None = None) -> TaskRun:
        return self.invoke("deploy", "--version", release.tag, "--json", *flags, env=env)

    def healthz(self, node: int = 0) -> dict[str, Any] | None:
        return healthz(f"http://{self.node_addresses[node]}:{PORT}", timeout=3)

    def serving_commit(self, node: int = 0) -> str:
        return str(wait_for("the stack answers /healthz", lambda: self.healthz(node), timeout=60)["commit"])

    def web_tags(self) -> set[str]:
        """The releases the web service's tasks run (`status`): after a fault, they may be a mix."""
        run = self.invoke("status", "--json")
        assert run.returncode == 0, run.describe()
        web = run.json()["services"].get("web") or {"tasks": []}  # none before the first deploy
        return {task["tag"] for task in web["tasks"]}

    def ensure_serving(self, release: Release) -> None:
        """`release` on every web task (one /healthz answer cannot tell a mix of releases apart)."""
        if self.web_tags() != {release.tag}:
            run = self.deploy(release)
            assert run.returncode == 0, run.describe()
        assert self.serving_commit() == release.commit

    # -- the registry's access log --------------------------------------------------------------
    def log_offset(self) -> int:
        return self.registry_log.stat().st_size

    def blob_gets_by_client(self, offset: int) -> dict[str, list[Access]]:
        """GET 200 blob downloads since `offset`, by client address (each node has its own)."""
        with self.registry_log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        by_client: dict[str, list[Access]] = {}
        for line in text.splitlines():
            accesses = parse_access_log(line)
            if accesses and accesses[0].method == "GET" and accesses[0].status == 200 and accesses[0].is_blob:
                by_client.setdefault(line.split()[0], []).append(accesses[0])
        return by_client

"""Driving the invoke tasks as a user does: in a git clone of the repository, through the `invoke` CLI.

The clone holds the work tree as it is (uncommitted changes included), committed, so the
tasks see a clean tree; its tasks/ and delivery packages are what run. The server engine,
the registry's access log and the compose project a test module deploys are looked at here.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from delivery.config.references import split_image_ref
from delivery.hosts.history import HISTORY_LABEL
from delivery.hosts.lock import LOCK_LABEL
from delivery.registry.client import is_index
from delivery.release.pullreport import Access, parse_access_log
from dockerbed import worktree
from tests.integration.support.testbed import CA_BUNDLE, REPO_ROOT, Testbed

# What the tasks call the registry by default (invoke.yaml deploy.registry); the test bed's
# registry listens on 127.0.0.1:5000, which the engines reach as localhost:5000 too.
REGISTRY = "localhost:5000"
APP_REPOSITORY = "production-control"
DEPS_REPOSITORY = "production-control-deps"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
# User agent of the server engine's pulls; the tasks read and push with skopeo (its own user agent).
ENGINE_USER_AGENT = '"docker/'


@dataclass(frozen=True)
class TaskRun:
    """One finished `invoke` command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError as error:
            raise AssertionError(f"`{self.command}` printed no JSON ({error}):\n{self.describe()}") from None

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr_lines if line.startswith("error:")]

    def describe(self) -> str:
        return f"$ {self.command}\nexit {self.returncode} after {self.seconds:.1f}s\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def succeeded(run: TaskRun) -> TaskRun:
    """A task that worked: exit 0, no traceback."""
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    return run


def one_error_line(run: TaskRun, last: bool = True) -> str:
    """A failed task: exit 1, no traceback, exactly one `error:` line (the last line, unless last=False);
    progress lines may come before it."""
    assert run.returncode == 1, run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    assert len(run.error_lines) == 1, run.describe()
    assert not last or run.stderr_lines[-1] == run.error_lines[0], run.describe()
    return run.error_lines[0]


def only_an_error_line(run: TaskRun) -> str:
    """A user error caught before any work: exit 1, no traceback, stderr is exactly one `error: ...` line."""
    assert run.returncode == 1, run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    assert len(run.stderr_lines) == 1 and run.stderr_lines[0].startswith("error: "), run.describe()
    return run.stderr_lines[0]


def invoke_executable() -> Path:
    """The `invoke` of the environment running the tests (the project's .venv)."""
    for candidate in (Path(sys.executable).parent / "invoke", REPO_ROOT / ".venv" / "bin" / "invoke"):
        if candidate.is_file():
            return candidate
    raise AssertionError(f"no invoke next to {sys.executable} nor in {REPO_ROOT / '.venv'}: run `scripts/setup`")


def task_environment(testbed: Testbed, overrides: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without any INVOKE_* setting, plus the test bed's and `overrides`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVOKE_")}
    env["INVOKE_DEPLOY_PYTHON_IMAGE"] = testbed.python_image  # no Docker Hub: the offline base, in the test bed's registry
    env["INVOKE_DEPLOY_PROXY_IMAGE"] = testbed.proxy_image  # likewise the proxy's
    env["INVOKE_DEPLOY_PLATFORMS"] = "linux/amd64"  # that base is amd64 only (test_multiplatform builds both)
    ca_bundle = os.environ.get("INVOKE_DEPLOY_CA_BUNDLE") or (str(CA_BUNDLE) if CA_BUNDLE.is_file() else None)
    if ca_bundle:
        env["INVOKE_DEPLOY_CA_BUNDLE"] = ca_bundle  # PyPI goes through a TLS-inspecting proxy
    env.update(overrides)
    return env


@dataclass
class Clone:
    """A git clone of the repository holding its current work tree, committed; tasks run here."""

    path: Path
    testbed: Testbed
    env: dict[str, str] = field(default_factory=dict)  # INVOKE_DEPLOY_* settings of every run

    @classmethod
    def create(cls, destination: Path, testbed: Testbed) -> "Clone":
        worktree.clone(REPO_ROOT, destination, "the work tree under test", user="test_tasks")
        return cls(destination, testbed)

    def invoke(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300) -> TaskRun:
        argv = (str(invoke_executable()), *args)
        started = time.monotonic()
        result = subprocess.run(
            argv,
            cwd=self.path,
            env=task_environment(self.testbed, {**self.env, **(env or {})}),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return TaskRun(("invoke", *args), result.returncode, result.stdout, result.stderr, time.monotonic() - started)

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "--quiet", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").strip()

    def is_clean(self) -> bool:
        return git(self.path, "status", "--porcelain").strip() == ""

    def reset_to(self, commit: str) -> None:
        git(self.path, "reset", "--quiet", "--hard", commit)

    def discard_changes(self) -> None:
        """Back to HEAD: modified files restored, untracked (not ignored) files removed."""
        git(self.path, "checkout", "--quiet", "--", ".")
        git(self.path, "clean", "--quiet", "-fd")

    def replace_text(self, relative: str, old: str, new: str) -> None:
        path = self.path / relative
        text = path.read_text()
        assert text.count(old) == 1, f"{relative} does not contain {old!r} exactly once"
        path.write_text(text.replace(old, new))

    def pyproject(self) -> dict[str, Any]:
        with (self.path / "pyproject.toml").open("rb") as f:
            return tomllib.load(f)

    @property
    def app_version(self) -> str:
        return str(self.pyproject()["project"]["version"])

    @property
    def deps_version(self) -> str:
        return str(self.pyproject()["tool"]["production-control"]["deps"]["version"])


def git(cwd: Path | None, *args: str) -> str:
    return worktree.git(cwd or Path.cwd(), *args)


def free_port() -> int:
    """A TCP port nothing listens on right now (on all addresses, as compose publishes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 15.0, interval: float = 0.2) -> Any:
    """The first truthy result of `probe`; fail after `timeout` seconds with the last error."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except (httpx.HTTPError, OSError, DockerException) as error:
            last = error
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f}s (last: {last!r})")
        time.sleep(interval)


def healthz(url: str, timeout: float = 2) -> dict[str, Any] | None:
    """GET `url`/healthz: its JSON when it answers 200, else None."""
    try:
        response = httpx.get(f"{url}/healthz", timeout=timeout)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def get_json(port: int, path: str) -> dict[str, Any]:
    """GET http://127.0.0.1:<port><path>, asserting 200 and a JSON object."""

    def fetch() -> dict[str, Any] | None:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5.0)
        return response.json() if response.status_code == 200 else None

    return wait_for(f"{path} on port {port} answered 200", fetch)


# -- the registry: what a release is made of, and what it served -----------------------------
@dataclass(frozen=True)
class ReleaseBlobs:
    """A release's manifest digest, config blob and layer blobs, as the registry holds them."""

    digest: str
    config: tuple[str, int]
    layers: tuple[tuple[str, int], ...]

    @property
    def blob_digests(self) -> frozenset[str]:
        return frozenset([self.config[0], *(digest for digest, _ in self.layers)])


# -- the deps repository as the registry serves it --------------------------------------------------------
def registry_json(path: str, accept: str = "application/vnd.oci.image.manifest.v1+json") -> tuple[int, Any]:
    """GET http://REGISTRY/v2/PATH: its status, and its JSON when 200."""
    response = httpx.get(f"http://{REGISTRY}/v2/{path}", headers={"Accept": accept}, timeout=10)
    return response.status_code, (response.json() if response.status_code == 200 else None)


def deps_tags() -> set[str]:
    status, body = registry_json(f"{DEPS_REPOSITORY}/tags/list")
    return set((body or {}).get("tags") or []) if status == 200 else set()


def sbom_of(tag: str) -> dict[str, Any]:
    """The CycloneDX SBOM pushed beside deps tag `tag`."""
    status, manifest = registry_json(f"{DEPS_REPOSITORY}/manifests/{tag}.sbom")
    assert status == 200, f"no SBOM beside {DEPS_REPOSITORY}:{tag}"
    assert manifest["artifactType"] == "application/vnd.cyclonedx+json"
    return registry_json(f"{DEPS_REPOSITORY}/blobs/{manifest['layers'][0]['digest']}")[1]


def release_blobs(registry: str, repository: str, reference: str, architecture: str = "amd64") -> ReleaseBlobs:
    """Read the linux/<architecture> image manifest of repository:reference straight from the registry API."""
    base = f"http://{registry}/v2/{repository}"
    response = httpx.get(f"{base}/manifests/{reference}", headers={"Accept": ", ".join(MANIFEST_TYPES)}, timeout=10)
    assert response.status_code == 200, f"{repository}:{reference} is not in {registry} (HTTP {response.status_code})"
    document = response.json()
    if is_index(document):  # take the image of the architecture
        entry = next(m for m in document["manifests"] if (m.get("platform") or {}).get("architecture") == architecture)
        return release_blobs(registry, repository, entry["digest"], architecture)
    return ReleaseBlobs(
        digest=response.headers["docker-content-digest"],
        config=(document["config"]["digest"], int(document["config"]["size"])),
        layers=tuple((layer["digest"], int(layer["size"])) for layer in document["layers"]),
    )


def log_size(log: Path) -> int:
    return log.stat().st_size


def accesses_between(log: Path, start: int, end: int, *, only: str | None = None) -> list[Access]:
    """The registry's accesses logged between byte offsets `start` and `end`; with `only`, from lines containing it."""
    with log.open("rb") as f:
        f.seek(start)
        text = f.read(max(0, end - start)).decode(errors="replace")
    lines = [line for line in text.splitlines() if only is None or only in line]
    return parse_access_log("\n".join(lines))


def blob_gets(accesses: Iterable[Access], repository: str, digests: Iterable[str]) -> list[Access]:
    """The blob GETs of `repository` that fetched one of `digests`."""
    wanted = set(digests)
    prefix = f"/v2/{repository}/blobs/"
    return [
        a for a in accesses
        if a.method == "GET" and a.path.startswith(prefix) and a.path[len(prefix):].split("?")[0] in wanted
    ]  # fmt: skip


# -- the server engine: the deployed compose project --------------------------------------------
def project_filter(project: str) -> list[tuple[str, str]]:
    return [("label", f"com.docker.compose.project={project}")]


# docker-compose.yml's services, by role: the web app runs in one of two slots (blue/green).
SERVICES = {"web": ("web-blue", "web-green"), "cron": ("cron",), "proxy": ("proxy",)}


def service_containers(server: DockerClient, project: str, role: str) -> list[Any]:
    """The project's running containers of a role: web (either slot), cron or proxy."""
    running = server.container.list(filters=project_filter(project))
    return [c for c in running if (c.config.labels or {}).get("com.docker.compose.service") in SERVICES[role]]


def app_container(server: DockerClient, project: str, role: str = "web"):
    """The one running container of `role` (the live web slot once a deploy has finished)."""
    containers = service_containers(server, project, role)
    assert len(containers) == 1, f"expected one {role} container of project {project}, found {[c.name for c in containers]}"
    return containers[0]


def pinned_tag(server: DockerClient, container: Any) -> str | None:
    """The release tag a deployed container was started by. Deploys and rollbacks start it pinned to a digest
    (`<registry>/production-control:<tag>@sha256:...`), which must be one the engine recorded for its image."""
    ref = split_image_ref(container.config.image)
    assert ref.digest, f"{container.name} was started by tag alone ({container.config.image}), not pinned to a digest"
    recorded = [d.rsplit("@", 1)[1] for d in server.image.inspect(container.image).repo_digests or []]
    assert ref.digest in recorded, f"{container.name} was started by {ref.digest}, not a digest of its image ({recorded})"
    return ref.tag


def remove_project(server: DockerClient, project: str, release_tags: Iterable[str]) -> None:
    """Everything a deploy of `project` leaves on the server: containers, volume, networks,
    the deploy lock, the history (volumes, and the tags older toolkits kept), and the release tags pulled for it."""
    with suppress(DockerException):
        containers = server.container.list(all=True, filters=project_filter(project))
        if containers:
            server.container.remove(containers, force=True, volumes=True)
    with suppress(DockerException):
        networks = server.network.list(filters=project_filter(project))
        if networks:
            server.network.remove(networks)
    with suppress(DockerException):
        if server.network.exists(f"{project}-deploy-lock"):  # the lock of toolkits before the volume lock
            server.network.remove(f"{project}-deploy-lock")
    for label in (LOCK_LABEL, HISTORY_LABEL):  # the deploy lock and the history's entries: named volumes
        with suppress(DockerException):
            state = server.volume.list(filters=[("label", f"{label}={project}")])
            if state:
                server.volume.remove(state)
    with suppress(DockerException):
        volumes = server.volume.list(filters=project_filter(project))
        if volumes:
            server.volume.remove(volumes)
    history = f"{project}-history"
    refs = [ref for image in _images(server, history) for ref in image.repo_tags or [] if ref.startswith(f"{history}:")]
    refs += [f"{REGISTRY}/{APP_REPOSITORY}:{tag}" for tag in release_tags]
    for ref in refs:  # untag only: layers other projects use stay
        with suppress(DockerException):
            server.image.remove(ref)


def _images(server: DockerClient, repository: str) -> list:
    try:
        return server.image.list(repository)
    except DockerException:
        return []


# -- a registry the tasks start on demand ---------------------------------------------------------
def listening_pids(port: int) -> list[int]:
    """Processes with a TCP socket listening on `port` (any address), from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError), open(table) as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":  # 0A: LISTEN
                    inodes.add(f"socket:[{cols[9]}]")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
    return pids


def command_line(pid: int) -> list[str]:
    with suppress(OSError):
        return [arg.decode() for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if arg]
    return []


def stop_process(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM `pid` and wait until it is gone (or a zombie: its parent may never reap it)."""
    with suppress(ProcessLookupError):
        os.kill(pid, 15)
    wait_for(f"process {pid} exited", lambda: _state(pid) in ("", "Z"), timeout=timeout)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- releases made in the registry, without a build --------------------------------------------------
LAYER_TYPES = {
    "application/vnd.oci.image.manifest.v1+json": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.distribution.manifest.v2+json": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """An image layer (uncompressed tar) holding `files` (paths relative to /)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def push_blob(client: httpx.Client, base: str, data: bytes) -> str:
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if client.head(f"{base}/blobs/{digest}").status_code == 200:
        return digest
    started = client.post(f"{base}/blobs/uploads/")
    assert started.status_code == 202, f"starting a blob upload: HTTP {started.status_code} {started.text}"
    location = started.headers["location"]
    location = location if location.startswith("http") else f"{base.split('/v2/')[0]}{location}"
    separator = "&" if "?" in location else "?"  # the location carries the upload's state in its query
    done = client.put(f"{location}{separator}digest={digest}", content=data, headers={"content-type": "application/octet-stream"})
    assert done.status_code == 201, f"uploading blob {digest}: HTTP {done.status_code} {done.text}"
    return digest


def push_derived_release(registry: str, repository: str, base_tag: str, tag: str,
                         layers: Iterable[Mapping[str, bytes]]) -> str:
    """Push repository:tag = the image of base_tag plus one layer per mapping of files; its manifest digest.

    A release made without BuildKit, in a second: what a code-only release (or a dependency
    change, with a layer below the code) looks like to a server, which only pulls and runs it.
    """
    import gzip
    import hashlib

    with httpx.Client(timeout=60) as client:
        base = f"http://{registry}/v2/{repository}"
        blobs = release_blobs(registry, repository, base_tag)
        manifest = client.get(f"{base}/manifests/{blobs.digest}", headers={"Accept": ", ".join(MANIFEST_TYPES)})
        document = manifest.json()
        media_type = document.get("mediaType") or manifest.headers["content-type"]
        config = client.get(f"{base}/blobs/{document['config']['digest']}").json()
        for files in layers:
            tar = layer_tar(files)
            compressed = gzip.compress(tar, mtime=0)
            digest = push_blob(client, base, compressed)
            document["layers"].append({"mediaType": LAYER_TYPES[media_type], "digest": digest, "size": len(compressed)})
            config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(tar).hexdigest())
            config.setdefault("history", []).append({"created": "2026-01-01T00:00:00Z", "created_by": f"test layer of {tag}"})
        config_bytes = json.dumps(config).encode()
        document["config"] = {**document["config"], "digest": push_blob(client, base, config_bytes), "size": len(config_bytes)}
        body = json.dumps(document).encode()
        pushed = client.put(f"{base}/manifests/{tag}", content=body, headers={"content-type": media_type})
        assert pushed.status_code == 201, f"pushing {repository}:{tag}: HTTP {pushed.status_code} {pushed.text}"
        return "sha256:" + hashlib.sha256(body).hexdigest()

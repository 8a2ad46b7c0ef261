"""What a deployed release may do, what its images hold, and a registry that wants credentials.

On the fault bed (faults_helpers): its deps image was built from a lock of its own (so every
dependency stage really ran pip) out of a work tree holding .env files, with build secrets that
carry unique markers (a comment line in the CA bundle, the password in the private index URL).
"""

import base64
import gzip
import io
import json
import secrets
import shutil
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from python_on_whales.exceptions import DockerException

from delivery.hosts.lock import LOCK_LABEL, lock_name
from delivery.registry.client import LOCAL_REGISTRY_STATE
from tests.integration.support.appcontainer import ComposeHardening, processes
from tests.integration.support.faults_helpers import APP_REPOSITORY, DEPS_REPOSITORY, FaultBed, RegistryServer, Release
from tests.integration.support.tasks_helpers import MANIFEST_TYPES, TaskRun, free_port, only_an_error_line, wait_for

pytestmark = pytest.mark.docker

REGISTRY_USER = "deployer"


@pytest.fixture
def good(bed: FaultBed) -> Release:
    release = bed.release("good")
    bed.ensure_serving(release)
    return release




# -- the deployed container ----------------------------------------------------------------------
def capabilities(names: list[str] | None) -> set[str]:
    return {name.upper().removeprefix("CAP_") for name in names or []}


def test_the_deployed_container_runs_hardened_as_compose_says(bed: FaultBed, good: Release) -> None:
    container = bed.container()
    host_config = bed.server.container.inspect(container).host_config
    wanted = ComposeHardening.from_compose(bed.repo.path / "docker-compose.yml")
    assert host_config.readonly_rootfs is True
    assert capabilities(host_config.cap_drop) == capabilities(list(wanted.cap_drop)) == {"ALL"}
    assert capabilities(host_config.cap_add) == capabilities(list(wanted.cap_add)) == {"CHOWN", "SETUID", "SETGID", "KILL"}
    assert "no-new-privileges:true" in (host_config.security_opt or [])

    web = [p for p in processes(bed.server, container) if p.is_web_app]
    assert len(web) == 1, f"web processes: {web}"
    assert 0 not in web[0].uids, f"the web app runs with uids {web[0].uids}"
    assert int(web[0].cap_eff, 16) == 0, f"the web app has capabilities {web[0].cap_eff}"

    for user in ("root", "app"):
        with pytest.raises(DockerException) as refused:
            bed.server.container.execute(container, ["touch", "/app/written-at-run-time"], user=user)
        assert "Read-only file system" in str(refused.value), f"{user}: {refused.value}"
    bed.record_run()  # while the data volume stays writable

    cron = bed.server.container.inspect(bed.container("cron")).host_config
    assert (cron.readonly_rootfs, capabilities(cron.cap_drop)) == (True, {"ALL"})
    proxy = bed.server.container.inspect(bed.container("proxy"))
    assert capabilities(proxy.host_config.cap_drop) == {"ALL"} and not proxy.host_config.cap_add
    assert "no-new-privileges:true" in (proxy.host_config.security_opt or [])
    assert proxy.config.user not in ("", "root", "0"), "the proxy runs as root"


# Every regular file of the image's root file system (not /proc, /sys, /dev) that carries file
# capabilities: no-new-privileges would keep those from taking effect too.
FILES_WITH_CAPABILITIES = """
import os
root = os.stat("/").st_dev
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.lstat(os.path.join(top, d)).st_dev == root]
    for name in files:
        path = os.path.join(top, name)
        try:
            os.getxattr(path, "security.capability", follow_symlinks=False)
        except OSError:
            continue
        print(path)
"""


def test_no_file_of_the_runtime_image_can_raise_privileges(bed: FaultBed, good: Release) -> None:
    """Swarm runs without no-new-privileges (docker stack deploy drops security_opt): the image itself
    has no setuid or setgid file (deps/os-layer.sh strips them) and no file with file capabilities."""
    image = f"{bed.registry.address}/{APP_REPOSITORY}:{good.tag}"
    setuid = bed.server.run(image, ["/", "-xdev", "-perm", "/6000", "-type", "f"], entrypoint="find", remove=True)
    assert str(setuid).split() == [], f"setuid or setgid files in {image}: {setuid}"
    capable = bed.server.run(image, ["-c", FILES_WITH_CAPABILITIES], entrypoint="python", remove=True)
    assert str(capable).split() == [], f"files with file capabilities in {image}: {capable}"


# -- no secret in any layer ----------------------------------------------------------------------
@dataclass(frozen=True)
class LayerEntry:
    image: str
    layer: str
    path: str


def image_blobs(registry: str, repository: str, tag: str) -> tuple[str, list[str]]:
    """(config digest, layer digests) of repository:tag, straight from the registry API."""
    accept = {"Accept": ", ".join(MANIFEST_TYPES)}
    response = httpx.get(f"http://{registry}/v2/{repository}/manifests/{tag}", headers=accept, timeout=10)
    assert response.status_code == 200, f"{repository}:{tag}: HTTP {response.status_code}"
    document = response.json()
    assert "layers" in document, f"{repository}:{tag} is not a single image manifest"
    return document["config"]["digest"], [layer["digest"] for layer in document["layers"]]


def blob(registry: str, repository: str, digest: str) -> bytes:
    response = httpx.get(f"http://{registry}/v2/{repository}/blobs/{digest}", timeout=60, follow_redirects=True)
    assert response.status_code == 200, f"{repository}@{digest}: HTTP {response.status_code}"
    return response.content


def scan(registry: str, repository: str, tag: str, markers: tuple[str, ...]) -> tuple[list[str], list[LayerEntry]]:
    """Every marker found (where), and every entry of every layer, of repository:tag."""
    found: list[str] = []
    entries: list[LayerEntry] = []
    config, layers = image_blobs(registry, repository, tag)
    image = f"{repository}:{tag}"
    text = blob(registry, repository, config)
    found += [f"{image} config: {m}" for m in markers if m.encode() in text]
    for digest in layers:
        data = blob(registry, repository, digest)
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        # The whole tar stream: file contents, names, link targets and pax headers alike.
        found += [f"{image} layer {digest[:19]}: {m}" for m in markers if m.encode() in raw]
        with tarfile.open(fileobj=io.BytesIO(raw)) as layer:
            entries += [LayerEntry(image, digest, member.name.removeprefix("./")) for member in layer]
    return found, entries


def test_no_build_secret_dotenv_or_git_reaches_any_layer(bed: FaultBed, good: Release) -> None:
    deps_image = bed.build_deps().json()["image"]
    assert "building deps image" in bed.build_deps().stderr, "the deps image was not built here: the secrets were not used"
    found, entries = [], []
    for repository, tag in ((DEPS_REPOSITORY, deps_image.rsplit(":", 1)[1]), (APP_REPOSITORY, good.tag)):
        more_found, more_entries = scan(bed.registry.address, repository, tag, bed.markers.all())
        found += more_found
        entries += more_entries
    assert found == [], f"build secrets or .env contents in the images: {found}"
    assert any(e.path.startswith("opt/venv/lib/") for e in entries), "the scan saw no installed package"
    assert any(e.path == "app/production_control/web.py" for e in entries), "the scan saw no app code"
    leaked = [e for e in entries if {".env", ".git"} & set(Path(e.path).parts)]
    assert leaked == [], f".env or .git in a layer: {leaked[:5]}"


# -- a registry that wants credentials --------------------------------------------------------
@dataclass
class AuthRegistry:
    server: RegistryServer
    password: str
    docker_config: Path  # the CLI config of "this machine": docker login writes here, not to ~/.docker
    port: int  # where its deploys serve

    def env(self, password: str | None = None, docker_config: Path | None = None) -> dict[str, str]:
        return {
            "INVOKE_DEPLOY_REGISTRY": self.server.address,
            "INVOKE_DEPLOY_REGISTRY_USER": REGISTRY_USER,
            "REGISTRY_PASSWORD": self.password if password is None else password,
            "DOCKER_CONFIG": str(docker_config or self.docker_config),
            "INVOKE_DEPLOY_HTTP_PORT": str(self.port),
        }

    def secrets(self) -> tuple[str, ...]:
        return (self.password, base64.b64encode(f"{REGISTRY_USER}:{self.password}".encode()).decode())


@pytest.fixture(scope="module")
def auth_registry(bed: FaultBed) -> Iterator[AuthRegistry]:
    root = bed.tmp / "auth-registry"
    root.mkdir(exist_ok=True)
    password = f"pw-{secrets.token_hex(12)}"
    htpasswd = root / "htpasswd"
    created = subprocess.run(["htpasswd", "-Bbn", REGISTRY_USER, password], capture_output=True, text=True)
    assert created.returncode == 0, f"htpasswd failed: {created.stderr} (`sudo scripts/testbed up` installs apache2-utils)"
    htpasswd.write_text(created.stdout)
    server = RegistryServer(root, free_port(), htpasswd=htpasswd)
    docker_config = bed.tmp / "docker-config"
    docker_config.mkdir(exist_ok=True)
    server.start()
    try:
        yield AuthRegistry(server, password, docker_config, free_port())
    finally:
        server.stop()


def no_secret_in(runs: list[TaskRun], registry: AuthRegistry) -> None:
    for run in runs:
        for secret in registry.secrets():
            assert secret not in run.stdout + run.stderr, f"the registry password is in the output of `{run.command}`"


@pytest.fixture(scope="module")
def auth_builds(bed: FaultBed, auth_registry: AuthRegistry) -> list[TaskRun]:
    """build-deps (pushing the deps image there) and build-app of the clone's HEAD, through the registry with auth."""
    runs = [bed.invoke("build-deps", "--json", env=auth_registry.env())]
    runs.append(bed.invoke("build-app", "--json", env=auth_registry.env()))
    assert all(run.returncode == 0 for run in runs), "\n\n".join(run.describe() for run in runs)
    return runs


def head_tag(bed: FaultBed) -> str:
    """The app tag build-app gives the clone's HEAD."""
    return f"{bed.repo.app_version}-{bed.repo.head()[:12]}"


def test_build_and_deploy_through_a_registry_that_requires_credentials(
    bed: FaultBed, auth_registry: AuthRegistry, auth_builds: list[TaskRun]
) -> None:
    assert httpx.get(f"http://{auth_registry.server.address}/v2/", timeout=5).status_code == 401
    env = {**auth_registry.env(), "INVOKE_DEPLOY_COMPOSE_PROJECT": f"{bed.project}-auth"}
    deploy = bed.invoke("deploy", "--host", bed.engine.host, "--version", head_tag(bed), "--json", env=env)
    assert deploy.returncode == 0, deploy.describe()
    no_secret_in([*auth_builds, deploy], auth_registry)
    # --json prints JSON only, also when the tasks log the docker CLI in.
    deps, app, report = (run.json() for run in (*auth_builds, deploy))
    assert deps["image"].startswith(f"{auth_registry.server.address}/{DEPS_REPOSITORY}:")
    assert (app["tag"], report["version"], report["healthy"]) == (head_tag(bed), head_tag(bed), True)
    health = wait_for("/healthz of the release from the registry with auth", lambda: httpx.get(
        f"http://127.0.0.1:{auth_registry.port}/healthz", timeout=2).json(), timeout=30)
    assert health["commit"] == bed.repo.head()


def assert_about_credentials(line: str, registry: AuthRegistry) -> None:
    assert registry.server.address in line, line
    assert "credentials" in line or "$REGISTRY_PASSWORD" in line, line


def never_logged_in(bed: FaultBed) -> Path:
    """A docker CLI config without a login: credentials from `docker login` come before the variable."""
    directory = bed.tmp / f"docker-config-{secrets.token_hex(4)}"
    directory.mkdir()
    return directory


def test_a_wrong_registry_password_fails_deploy_in_one_line(bed: FaultBed, auth_registry: AuthRegistry) -> None:
    env = {**auth_registry.env(password="not-the-password", docker_config=never_logged_in(bed)),
           "INVOKE_DEPLOY_COMPOSE_PROJECT": f"{bed.project}-auth"}  # fmt: skip
    line = only_an_error_line(bed.invoke("deploy", "--host", bed.engine.host, "--version", bed.release("good").tag, env=env))
    assert_about_credentials(line, auth_registry)


def test_a_wrong_registry_password_fails_build_in_one_line(bed: FaultBed, auth_registry: AuthRegistry) -> None:
    """A registry that refuses the credentials is running: build tasks must not try to start one."""
    state_existed = LOCAL_REGISTRY_STATE.exists()
    try:
        run = bed.invoke("build-app", env=auth_registry.env(password="not-the-password", docker_config=never_logged_in(bed)))
    finally:
        if not state_existed:
            shutil.rmtree(LOCAL_REGISTRY_STATE, ignore_errors=True)
    line = only_an_error_line(run)
    assert_about_credentials(line, auth_registry)
    assert run.seconds < 10, f"build-app took {run.seconds:.0f}s to refuse"


def test_deploy_logs_in_on_a_machine_that_never_did(
    bed: FaultBed, auth_registry: AuthRegistry, auth_builds: list[TaskRun]
) -> None:
    """An operator (or a CI deploy job) that did not build: deploy must log the docker CLI in itself, and only for
    that run: in a private docker config made for it (delivery/docker/engine.py), never in the user's own, which keeps
    its settings and gets no login, while the private one (under $TMPDIR) is gone when the task ends."""
    fresh = bed.tmp / "docker-config-never-logged-in"
    fresh.mkdir(exist_ok=True)
    own = {"auths": {}, "psFormat": "table {{.Names}}\t{{.Status}}"}  # a setting of the user's, kept as it is
    (fresh / "config.json").write_text(json.dumps(own))
    run_tmp = bed.tmp / f"tmpdir-{secrets.token_hex(4)}"
    run_tmp.mkdir()
    env = {**auth_registry.env(docker_config=fresh), "INVOKE_DEPLOY_COMPOSE_PROJECT": f"{bed.project}-auth2",
           "INVOKE_DEPLOY_HTTP_PORT": str(free_port()), "TMPDIR": str(run_tmp)}  # fmt: skip
    run = bed.invoke("deploy", "--host", bed.engine.host, "--version", head_tag(bed), env=env)
    assert run.returncode == 0, run.describe()  # the registry wants credentials: the engine pulled with the run's login
    no_secret_in([run], auth_registry)
    assert json.loads((fresh / "config.json").read_text()) == own, "deploy logged in in the user's own docker config"
    left = sorted(path.name for path in run_tmp.iterdir() if path.name.startswith("production-control-docker-config-"))
    assert left == [], f"the run's private docker config outlived it: {left}"
    home_config = Path.home() / ".docker" / "config.json"
    if home_config.is_file():
        assert auth_registry.server.address not in home_config.read_text(), f"{home_config} holds a login for the registry"
    for where in (fresh, run_tmp):
        for path in where.rglob("*"):
            if path.is_file() and not path.is_symlink():
                text = path.read_bytes()
                assert not any(secret.encode() in text for secret in auth_registry.secrets()), f"the password is in {path}"


def test_an_interrupted_deploy_removes_its_private_docker_login(bed: FaultBed, auth_registry: AuthRegistry,
                                                               auth_builds: list[TaskRun]) -> None:
    """SIGTERM (a cancelled CI job) while the deploy waits for another holder's lock, its login made: the private
    docker config holding that login goes with the task."""
    fresh = bed.tmp / f"docker-config-{secrets.token_hex(4)}"
    fresh.mkdir()
    run_tmp = bed.tmp / f"tmpdir-{secrets.token_hex(4)}"
    run_tmp.mkdir()
    project = f"{bed.project}-auth3"
    held = bed.server.volume.create(lock_name(project), driver="local", labels={
        LOCK_LABEL: project, "owner": "ci@elsewhere pid 7", "since": "2026-11-29T05:00:00Z", "machine": "elsewhere",
        "machine_id": "another-machine", "boot_id": "another-boot", "pid": "7", "token": "theirs"})  # fmt: skip
    try:
        env = {**auth_registry.env(docker_config=fresh), "INVOKE_DEPLOY_COMPOSE_PROJECT": project,
               "INVOKE_DEPLOY_HTTP_PORT": str(free_port()), "INVOKE_DEPLOY_LOCK_WAIT": "120", "TMPDIR": str(run_tmp)}  # fmt: skip
        task = bed.start_invoke("deploy", "--host", bed.engine.host, "--version", head_tag(bed), env=env)
        task.wait_for_stderr("waiting up to 120s for the deploy lock", timeout=180)
        [private] = [path for path in run_tmp.iterdir() if path.name.startswith("production-control-docker-config-")]
        assert auth_registry.server.address in (private / "config.json").read_text(), "the run did not log in there"
        task.process.send_signal(signal.SIGTERM)
        run = task.finish(timeout=60)
    finally:
        bed.server.volume.remove(held)
    assert run.returncode == 143 and "deploy interrupted by SIGTERM" in run.stderr, run.describe()
    assert not private.exists(), "the interrupted run left its private docker config (with the login) behind"
    assert not (fresh / "config.json").exists(), "the interrupted run wrote to the user's own docker config"
    no_secret_in([run], auth_registry)
